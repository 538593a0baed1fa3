"""Fit a spec'd model on stored arrays, report each epoch, save the result atomically."""

import itertools
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np

from app.ml import fused, performance
from app.ml.builder import as_graph, build_model, compile_single_output
from app.ml.checkpoints import CheckpointInfo
from app.ml.data import (
    TabularInputs,
    apply_missing_policy,
    bind_inputs,
    bind_outputs,
    load_arrays,
    model_targets,
    split_rows,
    take,
)
from app.ml.distill import DistillationModel
from app.ml.distribution import Placement
from app.ml.feeding import Feed, make_feed
from app.ml.gradient_health import DivergenceGuard, GradientHealth, TrainingDiverged
from app.ml.importance import Importance, NoImportance, permutation_importance
from app.ml.resume import (
    CarriedEarlyStopping,
    CarriedReduceLROnPlateau,
    Checkpointer,
    EpochOrder,
    Stop,
    restore,
)
from app.ml.run_control import STOP_PRECEDENCE, PerformanceRecord, RunControl, StopReason, TrainingStopped
from app.ml.spec import TrainingSpec
from app.ml.validation import loss_name

log = logging.getLogger(__name__)

# Normalization layers are adapted on at most this many rows (mean and variance converge fast).
ADAPT_ROWS = 100_000
# The share of device memory the training rows may take there, for a run without a RunControl.
DEFAULT_DEVICE_DATA_SHARE = 0.5

__all__ = [
    "CheckpointInfo",
    "DurableCallbacks",
    "ProgressCallback",
    "RunControl",
    "StopReason",
    "TrainingDiverged",
    "TrainingResult",
    "TrainingStopped",
    "save_atomically",
    "signature_of",
    "train",
]

EpochHook = Callable[[int, dict[str, float | str]], None]


class ProgressCallback(keras.callbacks.Callback):
    """Hands each finished epoch's logs to `on_epoch`, counts batches, and stops training when asked.

    `request_stop` may be called from another thread (the worker's heartbeat or watchdog); it
    takes effect at the next batch end. Without a RunControl, training then ends as if the
    epochs had run out (Keras still runs that epoch's validation); with one, `train()` raises
    TrainingStopped and runs no validation. `batches_done` and `last_batch_at` are plain
    attributes a watchdog may read from any thread; keeping them costs a counter and a
    monotonic clock read per batch, no I/O (a per-batch database write halves fit throughput,
    DESIGN.md).

    Args:
        on_epoch: called on the training thread with the 1-based epoch number (counted from the
            job's start, across resumes) and that epoch's logs as floats.
    """

    # The batch hook only counts: Keras may run it on its callback thread pool instead of waiting
    # for each batch's logs (a durable run's Checkpointer needs the training thread, and gets it).
    async_safe = True

    def __init__(self, on_epoch: EpochHook) -> None:
        super().__init__()
        self._on_epoch = on_epoch
        self._stop_requested = threading.Event()
        self._stop_lock = threading.Lock()
        self._stop_reason: StopReason | None = None
        self._batch_count = itertools.count(1)  # next() is atomic: batch ends may run on a thread pool
        self._batches_done = 0
        self._last_batch_at = time.monotonic()
        self._epoch_began_at = self._last_batch_at
        self._fitting = False
        # Set by train() when it was given a RunControl: stops are then carried out by raising.
        self.stops_by_raising = False

    def request_stop(self, reason: StopReason = StopReason.CANCEL) -> None:
        with self._stop_lock:
            current = self._stop_reason
            if current is None or STOP_PRECEDENCE.index(reason) > STOP_PRECEDENCE.index(current):
                self._stop_reason = reason
        self._stop_requested.set()
        # `self._model`, not `self.model`: on JAX the property syncs training state, which must
        # not happen from another thread.
        if not self.stops_by_raising and self._model is not None:
            self._model.stop_training = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    @property
    def stop_reason(self) -> StopReason | None:
        return self._stop_reason

    @property
    def batches_done(self) -> int:
        """Training steps finished in this process (groups of `steps_per_execution` batches)."""
        return self._batches_done

    @property
    def last_batch_at(self) -> float:
        """`time.monotonic()` at the end of the last training or validation step, or at the start
        of the current fit() call (one per epoch in a durable run) if later. It does not move
        while data loads, a checkpoint is written or the epoch hook runs."""
        return self._last_batch_at

    def touch(self) -> None:
        """Count something other than a batch as progress (a checkpoint written, say)."""
        self._last_batch_at = time.monotonic()

    @property
    def fitting(self) -> bool:
        """Whether fit() is running: a watchdog counts a stall only then (loading the data and
        saving the model have no batches)."""
        return self._fitting

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._fitting = True
        self._last_batch_at = time.monotonic()  # loading and tracing are not a stall
        # fit() resets stop_training at its start; a stop asked for before then still counts.
        if self.stop_requested and not self.stops_by_raising:
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._fitting = False

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches_done = next(self._batch_count)
        self._last_batch_at = time.monotonic()

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._last_batch_at = time.monotonic()  # a long validation pass is progress too

    @property
    def epoch_began_at(self) -> float:
        """`time.monotonic()` when the current epoch began (read by the epoch hook to time it)."""
        return self._epoch_began_at

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_began_at = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._on_epoch(epoch + 1, finite_floats(logs or {}))
        if self.stop_requested and not self.stops_by_raising:
            self.model.stop_training = True


class DurableCallbacks(keras.callbacks.CallbackList):
    """The callback list of a durable run's fit() calls: each batch end reaches the callbacks with
    the step's logs as they are.

    Keras converts a step's logs to Python floats before the callbacks see them whenever one of
    them must run on the training thread, as the Checkpointer must (it writes and stops at batch
    ends). Converting waits for the step to finish, so on JAX, where a step is queued and runs
    while Python goes on, no next step could be queued meanwhile (no gain measured on CPU JAX; the
    overlap is a GPU's). None of our batch hooks reads the logs; the epoch's logs are converted as
    before.
    """

    def __init__(self, callbacks: list[keras.callbacks.Callback], model: keras.Model, **params: Any) -> None:
        super().__init__(callbacks, add_history=True, model=model, **params)  # fit() returns the History

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        for callback in self.callbacks:
            callback.on_train_batch_end(batch, logs)


@dataclass
class TrainingResult:
    model: keras.Model
    epochs_run: int
    final_logs: dict[str, float | str] = field(default_factory=dict)
    # Per feature column, the value empty cells were filled with (preprocessing.missing).
    fill_values: list[float] | None = None
    resumed_from: CheckpointInfo | None = None
    performance: PerformanceRecord | None = None
    importance: Importance | NoImportance | None = None  # permutation importance (app.explain)


def train(
    spec: TrainingSpec,
    dataset_dir: Path,
    features: dict[str, Any],
    target: dict[str, Any],
    progress: ProgressCallback,
    run: RunControl | None = None,
    placement: Placement | None = None,
    teacher: keras.Model | None = None,
) -> TrainingResult:
    """Build the model from `spec` and fit it on the dataset stored in `dataset_dir`.

    Without `run`, Keras shuffles the arrays itself and nothing is written. With `run`, the batch
    order is our own (a seeded permutation per epoch, see EpochOrder) so that a run can be
    checkpointed after every epoch and every `run.checkpoint_every_s` inside one, and resumed
    from `run.resume_from` at the very batch it stopped at: weights, optimizer state (so its
    `iterations` and any learning-rate schedule continue), EarlyStopping and ReduceLROnPlateau
    state, and EarlyStopping's best weights are restored. A resume from inside an epoch trains
    that epoch's remaining batches: the training metrics reported for that epoch cover only
    those batches (validation covers all of its rows as usual). Each epoch is its own fit()
    call, so callbacks see on_train_begin/on_train_end once per epoch.

    Args:
        features: the dataset's feature schema (shape, columns); target: its target schema.
        run: checkpoint directory, attempt, fencing and resume point; None for a run that
            writes nothing and cannot be resumed.
        placement: the devices, when the caller built a `distribution.placed()` context around
            this call: rows that would make a batch the devices cannot split are left out.
        teacher: with `spec.distill`, the loaded teacher: the student trains inside a
            DistillationModel (checkpoints hold both; the result is the student alone).

    Every epoch's logs carry `grad_norm` and `grad_nonfinite` (app.ml.gradient_health).

    Raises:
        TrainingStopped: with `run`, when `progress.request_stop()` was called; no validation
            or test evaluation runs after the stop.
    """
    if spec.fit.seed is not None:
        keras.utils.set_random_seed(spec.fit.seed)
    graph = as_graph(spec.model)
    inputs = bind_inputs(graph.inputs, features)
    outputs = bind_outputs(graph.output_specs, target) if graph.outputs else {}
    tabular = TabularInputs.of(inputs, features, spec.preprocessing.standardize)
    arrays = load_arrays(dataset_dir, loss_name(spec), target.get("n_classes") if len(outputs) <= 1 else None)
    chosen = performance.plan(
        spec.fit,
        performance.data_bytes(arrays.x, arrays.y),
        run.device_data_share if run is not None else DEFAULT_DEVICE_DATA_SHARE,
        measurable=run is not None,
        layer_types=frozenset(layer.type for layer in graph.layers) | _nested_types(spec.model.model_dump()),
    )
    if placement is not None and len(placement.devices) > 1:
        # Data-parallel: Keras's distribution splits host batches over the devices; our own
        # device-resident gather would put every row on the first device.
        devices = len(placement.devices)
        if chosen.data_placement != "host":
            chosen.data_placement = "host"
            chosen.reasons["placement"] = f"data-parallel over {devices} devices: Keras shards host batches"
        chosen.unfuse(f"data-parallel over {devices} devices: Keras's own distributed step loop")
    with performance.dtype_context(chosen.dtype_policy):
        built = build_model(
            spec,
            {name: binding.shape for name, binding in inputs.items()},
            tabular=tabular,
            output_dtype="float32" if chosen.dtype_policy != "float32" else None,
        )
    performance.apply(built.model, chosen)
    # Whole rows, memory-mapped (inputs that take columns select them inside the model); copied
    # only when empty cells must be dropped or filled.
    rows, targets, labels, fill_values = arrays.x, model_targets(arrays.y, outputs), arrays.class_labels, None
    if features.get("missing"):  # the dataset's schema says so: no pass over clean data
        rows, targets, labels, fill_values = apply_missing_policy(rows, targets, labels, spec.preprocessing.missing)
    x, y = rows, targets
    for layer, source in built.to_adapt:  # in order: one adapted layer may feed the next
        sample = keras.Model(built.model.inputs, source)(np.asarray(x[:ADAPT_ROWS]))
        layer.adapt(keras.ops.convert_to_numpy(sample))
    split = None
    validation_data = None
    if spec.fit.validation_split or spec.fit.test_split:
        # Our own seeded (and, for classes, stratified) split: Keras's validation_split takes the
        # last rows as they are, which on a sorted file is one class. Copies the rows it takes.
        stratify_by = labels if len(outputs) <= 1 else None
        split = split_rows(len(x), spec.fit.validation_split, spec.fit.test_split, spec.fit.seed or 0, stratify_by)
        if len(split.validation):
            validation_data = (take(x, split.validation), take(y, split.validation))
        x, y = take(x, split.train), take(y, split.train)
    if placement is not None:
        x, y = placement.whole_batches((x, y), "training")
        if validation_data is not None:
            validation_data = placement.whole_batches(validation_data, "validation")
    student = model = built.model
    if spec.distill is not None:
        if teacher is None:
            raise ValueError("a distillation spec needs its teacher model")
        model = DistillationModel(student, teacher, spec.distill.temperature, spec.distill.alpha)
        compile_single_output(model, spec.compile, spec.fit.steps_per_execution or 1)
        performance.apply(model, chosen)
    health = _health_callbacks(spec, x, y)
    if run is None:
        history = model.fit(
            x,
            y,
            epochs=spec.fit.epochs,
            batch_size=spec.fit.batch_size,
            validation_data=validation_data,
            shuffle=spec.fit.shuffle,
            class_weight=spec.fit.class_weight,
            callbacks=[health[0], progress, health[1], *_fit_callbacks(spec)],
            verbose=0,
        )
        epochs_run, logs = len(history.epoch), _last_logs(history)
    else:
        epochs_run, logs = _fit_durably(spec, model, x, y, validation_data, progress, run, chosen, health)
    if split is not None and len(split.test):
        test_rows = (take(rows, split.test), take(targets, split.test))
        if placement is not None:
            test_rows = placement.whole_batches(test_rows, "test")
        # The student's own loss and metrics: what the served model does on the held-out rows.
        evaluated = student.evaluate(*test_rows, batch_size=spec.fit.batch_size, return_dict=True, verbose=0)
        logs |= {f"test_{name}": value for name, value in evaluated.items()}
    importance = _importance(student, features, rows, targets, split, spec.fit.seed or 0)
    return TrainingResult(
        model=student,
        epochs_run=epochs_run,
        final_logs=finite_floats(logs),
        fill_values=fill_values,
        resumed_from=run.resume_from if run is not None else None,
        performance=chosen.record(),
        importance=importance,
    )


def _importance(
    model: keras.Model, features: dict[str, Any], rows: Any, targets: Any, split: Any, seed: int
) -> Importance | NoImportance:
    """Permutation importance on the held-out rows: the test split, else the validation split.
    Never fails training: a failure is stored as the reason there is none."""
    held_out: tuple[Literal["test", "validation"], np.ndarray] | None = None
    if split is not None and len(split.test):
        held_out = ("test", split.test)
    if held_out is None and split is not None and len(split.validation):
        held_out = ("validation", split.validation)
    if held_out is None:
        return NoImportance(reason="training kept no test or validation split to measure it on")
    name, indexes = held_out
    started = time.monotonic()
    try:
        found = permutation_importance(
            model, model.loss, features.get("columns"), take(rows, indexes), take(targets, indexes), name, seed
        )
        log.info("permutation importance on the %s split in %.2f s", name, time.monotonic() - started)
        return found
    except Exception as exc:
        log.warning("permutation importance failed", exc_info=True)
        return NoImportance(reason=f"computing it failed: {type(exc).__name__}: {str(exc)[:200]}")


def _fit_durably(
    spec: TrainingSpec,
    model: keras.Model,
    x: Any,
    y: Any,
    validation_data: Any,
    progress: ProgressCallback,
    run: RunControl,
    chosen: performance.Plan,
    health: tuple[GradientHealth, DivergenceGuard],
) -> tuple[int, dict[str, Any]]:
    """fit() over our own batch order with checkpoints; resumes from `run.resume_from`.
    Returns the epochs finished in this attempt and the last epoch's logs."""
    carried = _fit_callbacks(spec)
    for callback in carried:
        if isinstance(callback, CarriedEarlyStopping):
            callback.restore_at_end = False  # no single fit() call is the end of training here
    state = restore(model, run.resume_from, carried) if run.resume_from is not None else {}
    saved = state.get("order") or {"seed": _order_seed(spec), "rows": len(x), "batch_size": spec.fit.batch_size}
    if (saved["rows"], saved["batch_size"]) != (len(x), spec.fit.batch_size):
        raise ValueError(
            f"checkpoint {run.resume_from}: saved for {saved['rows']} training rows in batches of "
            f"{saved['batch_size']}, but this run has {len(x)} in batches of {spec.fit.batch_size}; "
            "the dataset or the spec changed since: start the job afresh"
        )
    order = EpochOrder(len(x), spec.fit.batch_size, saved["seed"], spec.fit.shuffle)
    feed, placement = make_feed(chosen.data_placement, order, x, y, validation_data, spec.fit.class_weight)
    if placement != chosen.data_placement:
        chosen.reasons["placement"] = f"{keras.backend.backend()} has no {chosen.data_placement} path: {placement}"
        chosen.data_placement = placement  # type: ignore[assignment]
    if feed.device_rows is None:
        chosen.unfuse(f"the rows are not on the device ({placement}): Keras's own step loop")
    if chosen.steps_per_execution is not None:
        _fuse(model, chosen, feed, order)
        run.on_performance(chosen.record())
    checkpointer = Checkpointer(run, progress, order.batches_per_epoch, carried, {"order": saved})
    checkpointer.history = dict(state.get("history") or {})
    progress.stops_by_raising = True
    start, skip = (run.resume_from.epoch, run.resume_from.batch or 0) if run.resume_from else (0, 0)
    finished = bool(state.get("stopped_early"))
    logs: dict[str, Any] = dict(state.get("logs") or {})
    epochs_run = 0
    try:
        # One fit() call per epoch, over that epoch's rows in our order: a resume inside an epoch
        # is just a shorter call. Compiled step functions are kept across the calls.
        for epoch in range(start, spec.fit.epochs):
            if finished:
                break
            before: list[keras.callbacks.Callback] = []
            if chosen.steps_per_execution is None:  # auto: time the first steps, then size the groups
                probe_steps = min(performance.PROBE_STEPS, (order.batches_per_epoch - skip) // 2)
                if probe_steps >= performance.PROBE_WARMUP_STEPS + 2 and not progress.stop_requested:
                    skip, metric_state = _probe(model, feed, epoch, skip, probe_steps, spec, progress, chosen)
                    before.append(_MetricCarry(model, metric_state))
                else:  # too short to time, or stopped before the first batch (nothing will train)
                    chosen.steps_per_execution = 1
                    chosen.reasons["spe"] = (
                        "a stop was asked for before the first batch"
                        if progress.stop_requested
                        else f"{order.batches_per_epoch} batches an epoch are too few to time"
                    )
                _set_steps(model, chosen, order)
                _fuse(model, chosen, feed, order)
                run.on_performance(chosen.record())
            checkpointer.first_batch = skip

            def fit_epoch(epoch: int = epoch, first: int = skip, extra: list[Any] = before) -> Any:
                if chosen.fused_steps:
                    arguments = feed.group_args(fused.Grouping(order, chosen.steps_per_execution or 1), epoch, first)
                else:
                    arguments = feed.train_args(epoch, first, None)
                # Health before progress (its figures go in the epoch's row), the guard after it
                # (the diverged epoch is recorded) and before the checkpointer (not saved).
                callbacks = DurableCallbacks(
                    [*extra, health[0], progress, health[1], *carried, checkpointer],
                    model=model,
                    epochs=epoch + 1,
                    steps=arguments.get("steps_per_epoch"),
                    verbose=0,
                )
                return model.fit(
                    **arguments,
                    **feed.validation_args(),
                    initial_epoch=epoch,
                    epochs=epoch + 1,
                    shuffle=False,  # the order is ours
                    # A feed that weighs its rows itself (every one but the arrays'): not again.
                    class_weight=None if feed.weighs_classes else spec.fit.class_weight,
                    callbacks=callbacks,
                    verbose=0,
                )

            if epochs_run == 0:

                def fall_back() -> None:  # XLA could not compile: fuse without it, and say so on the job
                    _fuse(model, chosen, feed, order)
                    run.on_performance(chosen.record())

                history = _first_fit(model, chosen, fit_epoch, progress, fall_back)
            else:
                history = fit_epoch()
            epochs_run += len(history.epoch)
            logs = _last_logs(history) or logs
            finished, skip = bool(model.stop_training), 0
            for callback in carried:  # into the next call: Keras resets them in on_train_begin
                callback.carried = callback.state()
                if isinstance(callback, CarriedEarlyStopping):
                    callback.carried_best_weights = callback.best_weights
        _restore_best_weights(model, carried)
    except Stop as stop:
        checkpointer.finish()
        raise TrainingStopped(stop.reason, stop.epochs_done, checkpointer.last_checkpoint) from None
    except BaseException:
        checkpointer.finish(raise_errors=False)  # the training error is the one to report
        raise
    checkpointer.finish()  # the last epoch's checkpoint is whole before the model is saved
    if progress.stop_reason is not None:  # asked for after the last epoch: the test split is skipped too
        raise TrainingStopped(progress.stop_reason, start + epochs_run, checkpointer.last_checkpoint)
    return epochs_run, logs


def _probe(
    model: keras.Model,
    feed: Feed,
    epoch: int,
    skip: int,
    steps: int,
    spec: TrainingSpec,
    progress: ProgressCallback,
    chosen: performance.Plan,
) -> tuple[int, list[np.ndarray]]:
    """Train the epoch's next `steps` batches one step per call, timing them, and size
    `steps_per_execution` from that. Returns the batch the epoch continues at and the metrics'
    state so far (the continuing fit() call starts from it, so the epoch's logs cover all of it).

    The probe runs the same steps on the same batches as the rest would: it changes where the
    calls into the backend are cut, not what is computed.
    """
    timer = _StepTimer(progress)

    def fit_probe() -> Any:
        arguments = feed.train_args(epoch, skip, skip + steps)
        return model.fit(
            **arguments,
            epochs=1,
            shuffle=False,
            class_weight=None if feed.weighs_classes else spec.fit.class_weight,
            callbacks=[timer],
            verbose=0,
        )

    _first_fit(model, chosen, fit_probe, progress)
    chosen.steps_per_execution, chosen.reasons["spe"] = performance.size_steps(timer.steady_steps())
    return skip + timer.steps, [keras.ops.convert_to_numpy(v) for v in model.metrics_variables]


def _set_steps(model: keras.Model, chosen: performance.Plan, order: EpochOrder) -> None:
    """Use the chosen step group (at most an epoch) from the next fit() call on."""
    chosen.steps_per_execution = min(chosen.steps_per_execution or 1, order.batches_per_epoch)
    model.steps_per_execution = chosen.steps_per_execution
    model.train_function = model.test_function = model.predict_function = None  # rebuilt for the new size


def _first_fit(
    model: keras.Model,
    chosen: performance.Plan,
    call: Callable[[], Any],
    progress: ProgressCallback,
    fall_back: Callable[[], None] = lambda: None,
) -> Any:
    """The attempt's first fit() call: when XLA cannot compile the step (before any batch ran),
    falls back to no jit, calls `fall_back` (which rebuilds a fused group without it) and calls
    again."""
    done = progress.batches_done
    try:
        return call()
    except Stop:
        raise
    except Exception as exc:
        if chosen.jit_compile is not True or progress.batches_done != done:
            raise
        performance.without_jit(model, chosen, exc)
        fall_back()
        return call()


def _fuse(model: keras.Model, chosen: performance.Plan, feed: Feed, order: EpochOrder) -> None:
    """Once the step group is sized: make fit() run each group as one compiled loop, if chosen."""
    if not chosen.fused_steps:
        return
    steps = chosen.steps_per_execution or 1
    if steps == 1:
        chosen.unfuse("one step a group: nothing to fuse")
        return
    # What Keras made of the plan's jit ("auto" resolves to whether the layers support XLA).
    jit = bool(model.jit_compile)
    if not jit and keras.backend.backend() == "jax":
        chosen.unfuse("JAX without XLA runs op by op: Keras's own step loop")
        model.train_function = None
        return
    # The loss, metrics and optimizer are built before the loop: their variables cannot be created
    # inside it (Keras's own loop builds them at its first step).
    size = order.batch_size
    try:
        model._symbolic_build(data_batch=keras.tree.map_structure(lambda a: a[:size], feed.device_rows))
    except Exception as exc:  # e.g. a layer whose output shape at inference differs from training's
        reason = f"the model could not be built ahead of its first step ({performance.error_summary(exc)})"
        chosen.unfuse(f"{reason}: Keras's own step loop")
        model.train_function = None
        return
    fused.install(model, feed.device_rows, fused.Grouping(order, steps), jit)


class _StepTimer(keras.callbacks.Callback):
    """Times each step of the probe, and passes batch ends on to the progress callback (the
    stall watch and a stop request see the probe like any other batches)."""

    def __init__(self, progress: ProgressCallback) -> None:
        super().__init__()
        self._progress = progress
        self._ends: list[float] = []
        self.steps = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._progress.on_train_begin(logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._progress.on_train_end(logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if logs and "loss" in logs:
            # Wait for the step to finish: on JAX the call returns once the step is queued, and
            # a probe timing the queueing would size groups far longer than the target.
            keras.ops.convert_to_numpy(logs["loss"])
        self._ends.append(time.perf_counter())
        self.steps = batch + 1
        self._progress.on_train_batch_end(batch, logs)
        if self._progress.stop_requested:
            self._model.stop_training = True  # the epoch's own call then carries the stop out

    def steady_steps(self) -> list[float]:
        ends = self._ends[performance.PROBE_WARMUP_STEPS :]
        return [later - earlier for earlier, later in itertools.pairwise(ends)]


class _MetricCarry(keras.callbacks.Callback):
    """Puts the probe's metric state back after fit() reset it, so the epoch's logs cover the
    probe's batches too (first in the callback list: before anything reads them)."""

    def __init__(self, model: keras.Model, state: list[np.ndarray] | None) -> None:
        super().__init__()
        self._target, self._state = model, state

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._state is not None:
            for variable, value in zip(self._target.metrics_variables, self._state, strict=True):
                variable.assign(value)
            self._state = None


def _health_callbacks(spec: TrainingSpec, x: Any, y: Any) -> tuple[GradientHealth, DivergenceGuard]:
    """Gradient health sampled on the first batch of training rows, and the NaN/Inf loss guard."""
    rows = min(len(x), spec.fit.batch_size)
    sample_x = np.asarray(x[:rows])
    sample_y = keras.tree.map_structure(lambda a: np.asarray(a[:rows]), y)
    return GradientHealth(sample_x, sample_y), DivergenceGuard(spec)


def _nested_types(config: Any) -> frozenset[str]:
    """Every layer type named anywhere in a model's spec: the wrapped layer of a Bidirectional or
    TimeDistributed, the layers of a nested keras_config model."""
    found: set[str] = set()
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in ("type", "class_name") and isinstance(value, str):
                    found.add(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return frozenset(found)


def _order_seed(spec: TrainingSpec) -> int:
    if spec.fit.seed is not None:
        return spec.fit.seed
    return int(np.random.default_rng().integers(2**31 - 1))  # stored in every checkpoint from here on


def _restore_best_weights(model: keras.Model, carried: list[Any]) -> None:
    for callback in carried:
        if isinstance(callback, CarriedEarlyStopping) and callback.restore_best_weights:
            best = callback.best_weights if callback.best_weights is not None else callback.carried_best_weights
            if best is not None:
                model.set_weights(best)


def _last_logs(history: keras.callbacks.History) -> dict[str, Any]:
    return {name: values[-1] for name, values in history.history.items() if values}


def _fit_callbacks(spec: TrainingSpec) -> list[Any]:
    """EarlyStopping and ReduceLROnPlateau as the spec asks, in versions whose state can be carried
    across fit() calls and resumes (with no resume they behave exactly as Keras's own)."""
    callbacks: list[Any] = []
    if spec.fit.early_stopping is not None:
        callbacks.append(CarriedEarlyStopping(**spec.fit.early_stopping.model_dump()))
    if spec.fit.reduce_lr_on_plateau is not None:
        callbacks.append(CarriedReduceLROnPlateau(**spec.fit.reduce_lr_on_plateau.model_dump()))
    return callbacks


def save_atomically(model: keras.Model, path: Path) -> None:
    """Write `path` so that readers see either no file or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp.keras")  # Keras insists on the suffix
    try:
        model.save(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def signature_of(model: keras.Model) -> dict[str, Any]:
    """Input and output names, shapes and dtypes, as predict and metadata report them."""

    def describe(tensors: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": t.name,
                "shape": [d if d is not None else -1 for d in t.shape],
                "dtype": str(t.dtype),
            }
            for t in keras.tree.flatten(tensors)
        ]

    return {"inputs": describe(model.inputs), "outputs": describe(model.outputs)}


def finite_floats(logs: dict[str, Any]) -> dict[str, float | str]:
    """Logs as plain floats; NaN and infinity become "nan"/"inf" (JSON has no literal for them)."""
    out: dict[str, float | str] = {}
    for name, value in logs.items():
        number = float(value)
        out[name] = number if math.isfinite(number) else str(number)
    return out
