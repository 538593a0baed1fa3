"""The Keras side of durable training: our own batch order, checkpoints at batch and epoch ends,
callback state carried across fit() calls and attempts. Backend-agnostic (keras and numpy only).
"""

import functools
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np

from app.ml import checkpoints
from app.ml.checkpoints import CheckpointInfo
from app.ml.data import take
from app.ml.run_control import RunControl, StopReason

BEST_WEIGHTS_FILE = "best.weights.npz"
# 2: weights in model.weights.npz (the variables in _checkpointed_variables' order, listed in
# state.json); 1: model.weights.h5 from Keras's save_weights.
STATE_FORMAT = 2


class EpochOrder:
    """The order training rows are seen in: a permutation of its own for each epoch, drawn from
    (seed, epoch), so a resumed run can rebuild the order of a half-trained epoch and skip the
    batches already trained. (Keras's own array shuffling cannot be reproduced mid-epoch.)"""

    def __init__(self, rows: int, batch_size: int, seed: int, shuffle: bool) -> None:
        self.rows, self.batch_size, self.seed, self.shuffle = rows, batch_size, seed, shuffle
        self.batches_per_epoch = math.ceil(rows / batch_size)

    def order_of(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.rows)
        return np.random.default_rng((self.seed, epoch)).permutation(self.rows)

    def epoch_rows(self, arrays: Any, epoch: int, first_batch: int = 0, end_batch: int | None = None) -> Any:
        """`arrays` (an array or a dict of them) in epoch `epoch`'s order, batches `first_batch`
        up to `end_batch` (None: the epoch's end).

        Gathers a copy when shuffling (fit() would copy the arrays into its own pipeline anyway);
        without shuffling, a view.
        """
        start = first_batch * self.batch_size
        stop = None if end_batch is None else end_batch * self.batch_size
        if not self.shuffle:
            return {k: a[start:stop] for k, a in arrays.items()} if isinstance(arrays, dict) else arrays[start:stop]
        return take(arrays, self.order_of(epoch)[start:stop])


class Carried:
    """Callback state that survives fit() calls and resumes (Keras resets it in on_train_begin).

    `carried` is applied right after the reset; `state()` is what a checkpoint stores.
    """

    STATE: ClassVar[tuple[str, ...]] = ()
    KEY: ClassVar[str] = ""
    carried: dict[str, Any] | None = None

    def state(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.STATE}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)  # type: ignore[misc]
        for name, value in (self.carried or {}).items():
            setattr(self, name, value)


class CarriedEarlyStopping(Carried, keras.callbacks.EarlyStopping):
    """EarlyStopping whose wait, best and best epoch survive a resume.

    With `restore_best_weights`, the best weights are carried too (a checkpoint stores them
    beside the model's). A durable run calls fit() once per epoch, none of which is the end of
    training: it turns `restore_at_end` off and restores the best weights itself at the end.
    """

    STATE = ("wait", "stopped_epoch", "best", "best_epoch")
    KEY = "early_stopping"
    restore_at_end = True
    carried_best_weights: list[np.ndarray] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self.carried_best_weights is not None:
            self.best_weights = self.carried_best_weights

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_at_end:
            super().on_train_end(logs)


class CarriedReduceLROnPlateau(Carried, keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose wait, best and cooldown survive a resume (the rate itself is an
    optimizer variable, saved with the weights)."""

    STATE = ("wait", "best", "cooldown_counter")
    KEY = "reduce_lr_on_plateau"


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, np.floating | np.integer) else value


class Stop(Exception):
    """Raised from a callback to leave fit() at once: Keras then runs no validation pass."""

    def __init__(self, reason: StopReason, epochs_done: int) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.epochs_done = epochs_done


class Checkpointer(keras.callbacks.Callback):
    """Writes checkpoints after every epoch and every `checkpoint_every_s` inside one, and carries
    out stop requests at the next batch end.

    Goes last in the callback list: at an epoch end the progress hook (epoch rows) and the
    EarlyStopping/ReduceLROnPlateau updates have run, so a checkpoint agrees with them.
    The batch hook reads two attributes and compares one number unless something is due; it
    never touches `self.model` then (on JAX that would sync the training state every batch).

    Args:
        stop_reason / last_batch_at: read from the progress callback, which runs first.
        extra_state: JSON-able state every checkpoint repeats (the shuffle seed and sizes).
    """

    def __init__(
        self,
        run: RunControl,
        progress: Any,
        batches_per_epoch: int,
        carried: list[Carried],
        extra_state: dict[str, Any],
    ) -> None:
        super().__init__()
        self._run = run
        self._progress = progress
        self._batches_per_epoch = batches_per_epoch
        self.first_batch = 0  # batches of the current epoch trained before this fit() call
        self._carried = carried
        self._extra = extra_state
        self._next_due = math.inf
        self._epoch = 0
        self.last_checkpoint: CheckpointInfo | None = None
        self._writer = checkpoints.BackgroundWriter()
        # epoch (as a string, JSON's keys) → that epoch's logs, carried from checkpoint to checkpoint
        self.history: dict[str, dict[str, float | str]] = {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._next_due = time.monotonic() + self._run.checkpoint_every_s

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        reason = self._progress.stop_reason
        if reason is not None:  # asked before this epoch's first batch: nothing new to save
            raise Stop(reason, epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._writer.ready:  # an epoch's checkpoint finished writing in the background
            self._report(self._writer.collect())
        reason = self._progress.stop_reason
        if reason is None and self._progress.last_batch_at < self._next_due:
            return
        done = min(self.first_batch + batch + 1, self._batches_per_epoch)
        at_epoch_end = done >= self._batches_per_epoch
        if reason is None:
            if not at_epoch_end:  # the epoch's own checkpoint is a few moments away otherwise
                self._write(self._epoch, done)
            return
        if reason is StopReason.HAND_BACK:
            if at_epoch_end:
                return  # finish the epoch (validation, its row, its checkpoint) and hand back there
            self._write(self._epoch, done)
        raise Stop(reason, self._epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        reason = self._progress.stop_reason
        if reason in (StopReason.CANCEL, StopReason.LEASE_LOST):
            raise Stop(reason, epoch + 1)
        stopped_early = bool(self._model.stop_training)
        self.history[str(epoch + 1)] = {name: _json_number(value) for name, value in (logs or {}).items()}
        # In the background unless training stops here: a hand-back's or a time-out's checkpoint
        # is complete before this attempt gives the job up.
        background = reason is None
        self._write(epoch + 1, None, background, logs=dict(logs or {}), stopped_early=stopped_early)
        if reason is not None:
            raise Stop(reason, epoch + 1)

    def finish(self, raise_errors: bool = True) -> None:
        """Wait for a checkpoint still being written and report it. Called once training stops
        (whatever the reason): nothing is written after this attempt's outcome is recorded."""
        try:
            self._report(self._writer.wait())
        except Exception:
            if raise_errors:
                raise
        finally:
            self._writer.close()

    def _write(self, epoch: int, batch: int | None, background: bool = False, **state: Any) -> None:
        """Checkpoint the model as it is now. The training thread copies the variables to host
        memory (and on JAX syncs them into the model first); writing, fsync, rename and the fence
        happen on the writer's thread when `background`, here otherwise (after any background
        write still running: checkpoints complete and are reported in order)."""
        if not background:
            self._report(self._writer.wait())
        if not self._run.may_write():
            return
        model = self.model  # on JAX this syncs the training state into the model: wanted here
        variables = _checkpointed_variables(model)
        arrays = [np.array(keras.ops.convert_to_numpy(v), copy=True) for v in variables]
        files: dict[str, checkpoints.FileWriter] = {
            checkpoints.WEIGHTS_FILE: functools.partial(_save_arrays, arrays=arrays)
        }
        for callback in self._carried:
            best = getattr(callback, "best_weights", None)
            if getattr(callback, "restore_best_weights", False) and best is not None:
                # get_weights() copies: later training does not change these arrays
                files[BEST_WEIGHTS_FILE] = functools.partial(_save_arrays, arrays=list(best))
        body = {
            "format": STATE_FORMAT,
            **self._extra,
            **state,
            # Every epoch's logs so far: the claim of a resuming attempt restores the epoch rows
            # this attempt could not record (cut off from the database while its lease lasted).
            "history": {e: logs for e, logs in self.history.items() if int(e) <= epoch},
            "callbacks": {callback.KEY: callback.state() for callback in self._carried},
            "variables": [v.path for v in variables],
        }
        write = functools.partial(
            checkpoints.write_checkpoint,
            self._run.checkpoint_dir,
            self._run.attempt,
            epoch,
            batch,
            files,
            body,
            may_write=self._run.may_write,
        )
        self._next_due = time.monotonic() + self._run.checkpoint_every_s
        if background:
            self._writer.submit(write)
        else:
            self._report([write()])

    def _report(self, written: Sequence[CheckpointInfo | None]) -> None:
        for info in written:
            if info is None:  # fenced off while writing
                continue
            self.last_checkpoint = info
            self._run.on_checkpoint(info)


def _checkpointed_variables(model: keras.Model) -> list[Any]:
    """The model's variables and its optimizer's (what Keras's `save_weights` stores), in an order
    a model built from the same spec repeats."""
    optimizer = model.optimizer
    return [*model.weights, *(optimizer.variables if optimizer is not None else [])]


def _json_number(value: Any) -> float | str:
    number = float(value)
    return number if math.isfinite(number) else str(number)


def _save_arrays(path: Path, arrays: list[np.ndarray]) -> None:
    with path.open("wb") as handle:  # np.savez would add ".npz" to a bare path
        np.savez(handle, *arrays)


def restore(model: keras.Model, info: CheckpointInfo, carried: list[Carried]) -> dict[str, Any]:
    """Load a checkpoint's weights and optimizer state into `model`, and the callbacks' states
    into `carried`. Returns the checkpoint's state.json."""
    try:
        state = checkpoints.read_state(info.path)
    except FileNotFoundError as exc:
        raise checkpoints.CheckpointGone(f"checkpoint {info.path.name} vanished before it was read") from exc
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its variables must exist to be loaded
    try:
        if (info.path / checkpoints.WEIGHTS_FILE).exists():
            _load_variables(model, info.path / checkpoints.WEIGHTS_FILE, state.get("variables"))
        else:  # written before the weights moved to npz
            model.load_weights(info.path / checkpoints.LEGACY_WEIGHTS_FILE)
    except FileNotFoundError as exc:
        raise checkpoints.CheckpointGone(f"checkpoint {info.path.name} vanished while it was read") from exc
    for callback in carried:
        callback.carried = state.get("callbacks", {}).get(callback.KEY)
        best_file = info.path / BEST_WEIGHTS_FILE
        if isinstance(callback, CarriedEarlyStopping) and best_file.exists():
            with np.load(best_file) as stored:
                callback.carried_best_weights = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    return state


def _load_variables(model: keras.Model, path: Path, names: list[str] | None) -> None:
    """Assign the arrays of a checkpoint's model.weights.npz to the model's and the optimizer's
    variables, checking that they are the same variables (count, shapes) first."""
    variables = _checkpointed_variables(model)
    with np.load(path) as stored:
        arrays = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    shapes = [tuple(v.shape) for v in variables]
    if len(arrays) != len(variables) or any(a.shape != s for a, s in zip(arrays, shapes, strict=False)):
        saved = list(names or [f"#{i}" for i in range(len(arrays))])
        differ = next(
            (
                f"{saved[i]} {arrays[i].shape} vs {variables[i].path} {shapes[i]}"
                for i in range(len(arrays))
                if i < len(shapes) and arrays[i].shape != shapes[i]
            ),
            f"{len(arrays)} saved variables vs {len(variables)}",
        )
        raise ValueError(
            f"checkpoint {path.parent.name}: its variables do not match this model's ({differ}): "
            "the spec changed since; start the job afresh"
        )
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)
