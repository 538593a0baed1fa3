"""Durable training: atomic checkpoints, fencing by attempt, stop requests, exact resumes."""

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from app.ml import checkpoints, feeding, resume, training
from app.ml.checkpoints import CheckpointInfo, latest_checkpoint, write_checkpoint
from app.ml.data import save_arrays
from app.ml.resume import EpochOrder
from app.ml.spec import TrainingSpec
from app.ml.training import (
    ProgressCallback,
    RunControl,
    StopReason,
    TrainingResult,
    TrainingStopped,
    train,
)
from tests.factories import classification_arrays, mlp_layers

FEATURES = {"shape": [4], "dtype": "float32", "columns": ["a", "b", "c", "d"]}
TARGET = {"shape": [], "dtype": "int64", "columns": ["label"], "classes": [0, 1, 2], "n_classes": 3}
# 200 rows, a quarter for validation: 150 training rows in 10 batches of 16, the last one short.
ROWS, BATCHES_PER_EPOCH = 200, 10
NEVER = 1e9


def stored_dataset(tmp_path: Path) -> Path:
    x, y = classification_arrays(rows=ROWS)
    save_arrays(tmp_path, x, y.astype(np.int64))
    return tmp_path


def job_spec(epochs: int = 4, optimizer: Any = "adam", hidden: int = 8, **fit: Any) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {"layers": mlp_layers(hidden=hidden)},
            "compile": {"optimizer": optimizer, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            # One step per call: these tests stop and checkpoint at given batches. (Under
            # fit.performance auto a stop takes effect at the end of a step group.)
            "fit": {
                "epochs": epochs,
                "batch_size": 16,
                "seed": 5,
                "validation_split": 0.25,
                "steps_per_execution": 1,
                **fit,
            },
        }
    )


class Recorder:
    """A job's side of a run: the epochs and checkpoints reported, and a stop to ask for."""

    def __init__(self, stop_at: tuple[str, int, StopReason | tuple[StopReason, ...]] | None = None) -> None:
        self.epochs: list[int] = []
        self.checkpoints: list[CheckpointInfo] = []
        self.stop_at = stop_at  # ("epoch" | "checkpoint", count, reason): ask once that many are reported
        self.progress = ProgressCallback(self.on_epoch)

    def on_epoch(self, epoch: int, logs: dict) -> None:
        self.epochs.append(epoch)
        self._maybe_stop("epoch", len(self.epochs))

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        self.checkpoints.append(info)
        self._maybe_stop("checkpoint", len(self.checkpoints))

    def _maybe_stop(self, kind: str, count: int) -> None:
        if self.stop_at is not None and self.stop_at[:2] == (kind, count):
            reasons = self.stop_at[2]
            for reason in reasons if isinstance(reasons, tuple) else (reasons,):
                self.progress.request_stop(reason)

    def run(
        self,
        directory: Path,
        attempt: int = 1,
        resume_from: CheckpointInfo | None = None,
        every_s: float = NEVER,
        may_write: Callable[[], bool] = lambda: True,
    ) -> RunControl:
        return RunControl(attempt, directory, every_s, resume_from, may_write, self.on_checkpoint)


def train_run(spec: TrainingSpec, data: Path, recorder: Recorder, run: RunControl) -> TrainingResult:
    return train(spec, data, FEATURES, TARGET, recorder.progress, run)


def stop_then_resume(
    spec: TrainingSpec, data: Path, directory: Path, stop_at: tuple[str, int, StopReason], every_s: float = NEVER
) -> tuple[TrainingStopped, Recorder, TrainingResult]:
    """Attempt 1 trains until asked to stop; attempt 2 resumes from the newest checkpoint."""
    first = Recorder(stop_at)
    with pytest.raises(TrainingStopped) as stopped:
        train_run(spec, data, first, first.run(directory, every_s=every_s))
    second = Recorder()
    resume_from = latest_checkpoint(directory, max_attempt=2)
    result = train_run(spec, data, second, second.run(directory, attempt=2, resume_from=resume_from))
    return stopped.value, second, result


def assert_same_weights(a: keras.Model, b: keras.Model) -> None:
    for left, right in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(left, right, rtol=1e-5, atol=1e-6)


def straight(spec: TrainingSpec, data: Path, directory: Path) -> TrainingResult:
    recorder = Recorder()
    return train_run(spec, data, recorder, recorder.run(directory))


# --- the layout on disk ---------------------------------------------------------------------------


def write(directory: Path, attempt: int, epoch: int, batch: int | None = None, payload: bytes = b"w") -> CheckpointInfo:
    return write_checkpoint(
        directory, attempt, epoch, batch, {checkpoints.WEIGHTS_FILE: lambda p: p.write_bytes(payload)}, {}
    )


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def test_a_crash_while_writing_leaves_the_previous_checkpoint_whole_and_nothing_half_written(tmp_path: Path) -> None:
    write(tmp_path, attempt=1, epoch=1, payload=b"epoch one")

    def crash(path: Path) -> None:
        path.write_bytes(b"half of a weights fi")
        # What a reader sees at the moment of the crash (a killed process cleans nothing up):
        seen_then.append((visible(tmp_path), latest_checkpoint(tmp_path, max_attempt=1)))
        raise OSError("disk full")

    seen_then: list[tuple[list[str], CheckpointInfo | None]] = []

    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(tmp_path, 1, 2, None, {checkpoints.WEIGHTS_FILE: crash}, {})

    [(names_then, latest_then)] = seen_then
    assert names_then == ["a0001-e000001"] and latest_then is not None and latest_then.epoch == 1
    assert visible(tmp_path) == ["a0001-e000001"]
    latest = latest_checkpoint(tmp_path, max_attempt=1)
    assert latest is not None and (latest.epoch, latest.batch) == (1, None)
    assert (latest.path / checkpoints.WEIGHTS_FILE).read_bytes() == b"epoch one"
    assert json.loads((latest.path / checkpoints.STATE_FILE).read_text())["epoch"] == 1
    assert not list(tmp_path.glob(".tmp-*"))  # the writer cleaned up after itself


def test_a_new_checkpoint_replaces_older_ones_of_its_lineage(tmp_path: Path) -> None:
    write(tmp_path, 1, 1)
    write(tmp_path, 1, 1, batch=5)  # inside epoch 2: after the epoch-1 boundary
    write(tmp_path, 1, 2)
    assert visible(tmp_path) == ["a0001-e000002"]


def test_an_older_attempt_never_removes_a_newer_attempts_checkpoint_and_latest_prefers_the_attempt(
    tmp_path: Path,
) -> None:
    write(tmp_path, attempt=2, epoch=1)
    write(tmp_path, attempt=1, epoch=7)  # a fenced-off attempt 1 that had got further

    assert visible(tmp_path) == ["a0001-e000007", "a0002-e000001"]
    newest = latest_checkpoint(tmp_path, max_attempt=2)
    assert newest is not None and (newest.attempt, newest.epoch) == (2, 1)
    older = latest_checkpoint(tmp_path, max_attempt=1)  # attempt 1 never reads attempt 2's work
    assert older is not None and (older.attempt, older.epoch) == (1, 7)
    write(tmp_path, attempt=2, epoch=2)
    assert visible(tmp_path) == ["a0002-e000002"]


def test_a_writer_fenced_off_while_it_wrote_publishes_nothing_and_removes_nothing(tmp_path: Path) -> None:
    write(tmp_path, attempt=1, epoch=2)  # the checkpoint attempt 2 is resuming from
    lease = {"held": True}

    def frozen_until_the_lease_is_gone(path: Path) -> None:
        path.write_bytes(b"epoch three")
        lease["held"] = False  # SIGSTOP here; another worker claims the job meanwhile

    info = write_checkpoint(
        tmp_path,
        1,
        3,
        None,
        {checkpoints.WEIGHTS_FILE: frozen_until_the_lease_is_gone},
        {},
        may_write=lambda: lease["held"],
    )

    assert info is None
    assert visible(tmp_path) == ["a0001-e000002"]
    assert not list(tmp_path.glob(".tmp-*"))


def test_the_background_writer_keeps_one_thread_and_reports_writes_in_order(tmp_path: Path) -> None:
    writer = checkpoints.BackgroundWriter()
    started, release = threading.Event(), threading.Event()
    threads: set[threading.Thread] = set()

    def checkpoint(epoch: int, wait: bool = False) -> Callable[[], CheckpointInfo | None]:
        def run() -> CheckpointInfo | None:
            threads.add(threading.current_thread())
            if wait:
                started.set()
                release.wait(10)
            return write(tmp_path, 1, epoch)

        return run

    writer.submit(checkpoint(1, wait=True))
    assert started.wait(10)
    writer.submit(checkpoint(2))
    writer.submit(checkpoint(3))  # replaces epoch 2, which never started
    release.set()
    assert [info.epoch for info in writer.wait(timeout=10)] == [1, 3] and writer.replaced == 1
    writer.submit(checkpoint(4))
    assert [info.epoch for info in writer.wait(timeout=10)] == [4]
    (thread,) = threads  # one thread took every write
    writer.close()
    thread.join(timeout=10)
    assert not thread.is_alive() and visible(tmp_path) == ["a0001-e000004"]


def test_readers_ignore_temp_directories_and_writers_remove_stale_ones(tmp_path: Path) -> None:
    stale, fresh = tmp_path / ".tmp-dead", tmp_path / ".tmp-live"
    for leftover in (stale, fresh):
        leftover.mkdir()
        (leftover / "state.json").write_text("{")
    an_hour_ago = time.time() - 3600
    for path in (stale / "state.json", stale):
        os.utime(path, (an_hour_ago, an_hour_ago))
    assert latest_checkpoint(tmp_path, max_attempt=9) is None

    write(tmp_path, 1, 1)
    assert not stale.exists() and fresh.exists()


def test_names_sort_and_parse_as_attempt_epoch_batch() -> None:
    names = [checkpoints.checkpoint_name(*position) for position in [(1, 3, None), (1, 2, 7), (1, 2, None), (2, 0, 1)]]
    assert sorted(names) == ["a0001-e000002", "a0001-e000002-b000000007", "a0001-e000003", "a0002-e000000-b000000001"]
    assert [checkpoints.parse_name(n) for n in sorted(names)][1] == (1, 2, 7)
    assert checkpoints.parse_name(".tmp-a0001-e000001") is None


def test_each_epoch_has_its_own_reproducible_order_and_a_resume_skips_what_was_trained() -> None:
    rows = np.arange(10)
    order = EpochOrder(rows=10, batch_size=4, seed=3, shuffle=True)
    first, second = order.epoch_rows(rows, 0), order.epoch_rows(rows, 1)
    assert order.batches_per_epoch == 3 and sorted(first) == list(range(10))  # every row once
    assert not np.array_equal(first, second)
    assert np.array_equal(first, EpochOrder(10, 4, seed=3, shuffle=True).epoch_rows(rows, 0))

    # Two batches of epoch 2 were trained before the stop: the resume gets the rest, in order.
    assert np.array_equal(order.epoch_rows({"y": rows}, 1, first_batch=2)["y"], second[8:])
    assert np.array_equal(EpochOrder(10, 4, seed=3, shuffle=False).epoch_rows(rows, 5, first_batch=1), rows[4:])


# --- what a checkpoint holds ----------------------------------------------------------------------


def test_saved_weights_carry_the_optimizers_iterations_and_adam_moments(tmp_path: Path) -> None:
    def compiled() -> keras.Model:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(optimizer="adam", loss="mse")
        return model

    trained = compiled()
    trained.fit(np.ones((32, 4)), np.ones((32, 3)), batch_size=8, epochs=1, verbose=0)
    trained.save_weights(tmp_path / "model.weights.h5")

    loaded = compiled()
    loaded.optimizer.build(loaded.trainable_variables)
    loaded.load_weights(tmp_path / "model.weights.h5")

    assert int(loaded.optimizer.iterations.numpy()) == 4
    for saved, restored in zip(trained.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(saved), keras.ops.convert_to_numpy(restored))
    assert any(np.abs(keras.ops.convert_to_numpy(v)).sum() > 0 for v in loaded.optimizer.variables[1:])


def test_epoch_checkpoints_are_written_off_the_training_thread_one_at_a_time_and_reported_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow volume: every weights file takes 0.3 s to write. The writes must happen on another
    # thread than training, never two at once, and be reported on the training thread in order;
    # the last epoch's checkpoint is whole when train() returns.
    training_thread = threading.get_ident()
    writers: list[int] = []
    in_flight, most_in_flight = [0], [0]
    save = resume._save_arrays

    def slow_save(path: Path, arrays: list[np.ndarray]) -> None:
        writers.append(threading.get_ident())
        in_flight[0] += 1
        most_in_flight[0] = max(most_in_flight[0], in_flight[0])
        time.sleep(0.3)
        save(path, arrays)
        in_flight[0] -= 1

    monkeypatch.setattr(resume, "_save_arrays", slow_save)
    data, spec = stored_dataset(tmp_path), job_spec(epochs=4)
    reported_on: list[int] = []
    recorder = Recorder()
    recorder.on_checkpoint = lambda info: (reported_on.append(threading.get_ident()), recorder.checkpoints.append(info))  # type: ignore[method-assign]

    result = train_run(spec, data, recorder, recorder.run(tmp_path / "ck"))

    assert writers and training_thread not in writers and most_in_flight[0] == 1
    assert set(reported_on) == {training_thread}
    epochs = [info.epoch for info in recorder.checkpoints]
    assert epochs == sorted(epochs) and epochs[-1] == 4  # a write still waiting may be replaced by a newer one
    assert visible(tmp_path / "ck") == ["a0001-e000004"]
    resumed = Recorder()
    again = train_run(spec, data, resumed, resumed.run(tmp_path / "ck", 2, latest_checkpoint(tmp_path / "ck", 2)))
    assert again.epochs_run == 0 and resumed.epochs == []  # the whole run is in that checkpoint
    assert_same_weights(again.model, result.model)


def test_a_checkpoint_of_the_keras_weights_format_still_resumes(tmp_path: Path) -> None:
    # Checkpoints written before the weights moved to npz hold Keras's model.weights.h5.
    data, spec = stored_dataset(tmp_path), job_spec(epochs=2)
    expected = straight(spec, data, tmp_path / "straight")
    one = straight(job_spec(epochs=1), data, tmp_path / "ck")
    checkpoint = tmp_path / "ck" / "a0001-e000001"
    one.model.save_weights(checkpoint / checkpoints.LEGACY_WEIGHTS_FILE)
    (checkpoint / checkpoints.WEIGHTS_FILE).unlink()

    second = Recorder()
    resumed = train_run(spec, data, second, second.run(tmp_path / "ck", 2, latest_checkpoint(tmp_path / "ck", 2)))

    assert second.epochs == [2]
    assert_same_weights(resumed.model, expected.model)


def test_a_checkpoint_of_other_variables_is_refused_with_the_reason(tmp_path: Path) -> None:
    data = stored_dataset(tmp_path)
    straight(job_spec(epochs=1), data, tmp_path / "ck")
    wider = job_spec(epochs=2, hidden=16)
    second = Recorder()
    with pytest.raises(ValueError, match="do not match this model"):
        train_run(wider, data, second, second.run(tmp_path / "ck", 2, latest_checkpoint(tmp_path / "ck", 2)))


def test_off_on_tensorflow_feeds_from_one_pipeline_the_batches_keras_arrays_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `off` keeps the rows in host memory but builds its tf.data pipeline once (fit() on arrays
    # builds one per call, i.e. per epoch): the same batches, so the same weights and logs.
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the host feed is built once on TensorFlow only")
    data, spec = stored_dataset(tmp_path), job_spec(epochs=3, performance="off")
    feeds: list[str] = []

    def recorded(*args: Any) -> Any:
        feed, placement = feeding.make_feed(*args)
        feeds.append(type(feed).__name__)
        return feed, placement

    monkeypatch.setattr(training, "make_feed", recorded)
    ours = straight(spec, data, tmp_path / "ours")
    monkeypatch.setattr(
        training, "make_feed", lambda _p, order, x, y, v, _weights: (feeding._HostFeed(order, x, y, v), "host")
    )
    arrays = straight(spec, data, tmp_path / "arrays")

    assert feeds == ["_TensorFlowFeed"]
    assert ours.performance is not None and ours.performance.data_placement.value == "host"
    assert_same_weights(ours.model, arrays.model)
    assert ours.final_logs == pytest.approx(arrays.final_logs, abs=1e-6)


# --- resume --------------------------------------------------------------------------------------


def test_a_run_stopped_after_two_epochs_resumes_to_the_same_weights(tmp_path: Path) -> None:
    data, spec = stored_dataset(tmp_path), job_spec(epochs=4)
    expected = straight(spec, data, tmp_path / "straight")

    stopped, second, resumed = stop_then_resume(spec, data, tmp_path / "ck", ("epoch", 2, StopReason.HAND_BACK))

    assert (stopped.reason, stopped.epochs_done) == (StopReason.HAND_BACK, 2)
    assert resumed.resumed_from is not None and (resumed.resumed_from.epoch, resumed.resumed_from.batch) == (2, None)
    assert second.epochs == [3, 4] and resumed.epochs_run == 2
    assert_same_weights(resumed.model, expected.model)
    assert int(resumed.model.optimizer.iterations.numpy()) == 4 * BATCHES_PER_EPOCH


def test_a_hand_back_inside_an_epoch_checkpoints_that_batch_and_resumes_to_the_same_weights(tmp_path: Path) -> None:
    data, spec = stored_dataset(tmp_path), job_spec(epochs=3, class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    expected = straight(spec, data, tmp_path / "straight")

    # A checkpoint at every batch end; the hand-back is asked for after the 14th (epoch 2, batch 4).
    stopped, second, resumed = stop_then_resume(
        spec, data, tmp_path / "ck", ("checkpoint", 14, StopReason.HAND_BACK), every_s=0
    )

    assert stopped.last_checkpoint is not None
    assert (stopped.last_checkpoint.epoch, stopped.last_checkpoint.batch) == (1, 5)  # the batch after the ask
    assert stopped.epochs_done == 1
    assert second.epochs == [2, 3]
    assert_same_weights(resumed.model, expected.model)
    assert int(resumed.model.optimizer.iterations.numpy()) == 3 * BATCHES_PER_EPOCH


def test_a_learning_rate_schedule_continues_from_the_saved_step(tmp_path: Path) -> None:
    # The rate drops a thousandfold at step 15, inside epoch 2: a schedule restarted at step 0
    # after the resume would train epochs 3 and 4 at the high rate again.
    schedule = {"type": "PiecewiseConstantDecay", "boundaries": [15], "values": [0.1, 0.0001]}
    data, spec = stored_dataset(tmp_path), job_spec(epochs=4, optimizer={"type": "SGD", "learning_rate": schedule})
    expected = straight(spec, data, tmp_path / "straight")

    _, _, resumed = stop_then_resume(spec, data, tmp_path / "ck", ("epoch", 2, StopReason.HAND_BACK))

    rate = resumed.model.optimizer.learning_rate
    assert float(keras.ops.convert_to_numpy(rate)) == pytest.approx(0.0001)
    assert_same_weights(resumed.model, expected.model)


def test_early_stopping_counts_on_across_a_resume(tmp_path: Path) -> None:
    # No epoch after the first can improve by 10: it stops at epoch 4 (patience 3) in one go.
    data = stored_dataset(tmp_path)
    spec = job_spec(epochs=10, early_stopping={"monitor": "val_loss", "patience": 3, "min_delta": 10})
    expected = straight(spec, data, tmp_path / "straight")
    assert expected.epochs_run == 4

    _, second, resumed = stop_then_resume(spec, data, tmp_path / "ck", ("epoch", 2, StopReason.HAND_BACK))

    assert second.epochs == [3, 4]
    state = checkpoints.read_state(latest_checkpoint(tmp_path / "ck", max_attempt=2).path)  # type: ignore[union-attr]
    stopping = state["callbacks"]["early_stopping"]
    assert (stopping["wait"], stopping["best_epoch"]) == (3, 0)
    assert state["stopped_early"] is True
    assert_same_weights(resumed.model, expected.model)


def test_a_run_resumed_from_its_last_epoch_trains_no_more(tmp_path: Path) -> None:
    data, spec, directory = stored_dataset(tmp_path), job_spec(epochs=2), tmp_path / "ck"
    finished = straight(spec, data, directory)
    recorder = Recorder()
    resume_from = latest_checkpoint(directory, max_attempt=2)
    again = train_run(spec, data, recorder, recorder.run(directory, attempt=2, resume_from=resume_from))

    assert again.epochs_run == 0 and recorder.epochs == []
    assert again.final_logs == finished.final_logs
    assert_same_weights(again.model, finished.model)


# --- stops and fencing ---------------------------------------------------------------------------


def test_a_cancel_stops_within_one_batch_writes_nothing_more_and_skips_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluations = []
    evaluate = keras.Model.evaluate

    def counted(self: keras.Model, *args: Any, **kwargs: Any) -> Any:
        evaluations.append(1)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "evaluate", counted)  # fit() validates through evaluate()
    data, spec = stored_dataset(tmp_path), job_spec(epochs=3, test_split=0.1)
    recorder = Recorder(stop_at=("checkpoint", 3, StopReason.CANCEL))

    with pytest.raises(TrainingStopped) as stopped:
        train_run(spec, data, recorder, recorder.run(tmp_path / "ck", every_s=0))

    assert (stopped.value.reason, stopped.value.epochs_done) == (StopReason.CANCEL, 0)
    assert recorder.progress.batches_done == 4  # asked after batch 3, stopped at the end of batch 4
    assert len(recorder.checkpoints) == 3 and visible(tmp_path / "ck") == ["a0001-e000000-b000000003"]
    assert recorder.epochs == [] and evaluations == []  # no validation pass, no test evaluation


def test_a_lost_lease_writes_nothing_more_even_after_a_hand_back(tmp_path: Path) -> None:
    data, spec = stored_dataset(tmp_path), job_spec(epochs=3)
    # Both asked after the 2nd checkpoint: the hand-back alone would write one at batch 3.
    recorder = Recorder(stop_at=("checkpoint", 2, (StopReason.HAND_BACK, StopReason.LEASE_LOST)))

    with pytest.raises(TrainingStopped) as stopped:
        train_run(spec, data, recorder, recorder.run(tmp_path / "ck", every_s=0))

    assert stopped.value.reason is StopReason.LEASE_LOST
    assert len(recorder.checkpoints) == 2 and visible(tmp_path / "ck") == ["a0001-e000000-b000000002"]


def test_a_time_out_inside_an_epoch_keeps_the_last_checkpoint_and_writes_no_new_one(tmp_path: Path) -> None:
    data, spec = stored_dataset(tmp_path), job_spec(epochs=3)
    recorder = Recorder(stop_at=("checkpoint", 12, StopReason.TIMED_OUT))  # epoch 2, batch 2

    with pytest.raises(TrainingStopped) as stopped:
        train_run(spec, data, recorder, recorder.run(tmp_path / "ck", every_s=0))

    assert (stopped.value.reason, stopped.value.epochs_done) == (StopReason.TIMED_OUT, 1)
    assert len(recorder.checkpoints) == 12 and visible(tmp_path / "ck") == ["a0001-e000001-b000000002"]


def test_a_stop_asked_before_training_starts_trains_nothing(tmp_path: Path) -> None:
    data, spec = stored_dataset(tmp_path), job_spec(epochs=3)
    recorder = Recorder()
    recorder.progress.request_stop(StopReason.HAND_BACK)

    with pytest.raises(TrainingStopped) as stopped:
        train_run(spec, data, recorder, recorder.run(tmp_path / "ck"))

    assert stopped.value.epochs_done == 0 and recorder.progress.batches_done == 0
    assert recorder.checkpoints == []


def test_when_the_fence_says_no_nothing_is_written(tmp_path: Path) -> None:
    data, spec = stored_dataset(tmp_path), job_spec(epochs=2)
    recorder = Recorder(stop_at=("epoch", 1, StopReason.HAND_BACK))

    with pytest.raises(TrainingStopped):
        train_run(spec, data, recorder, recorder.run(tmp_path / "ck", every_s=0, may_write=lambda: False))

    assert recorder.epochs == [1] and recorder.checkpoints == []
    assert not (tmp_path / "ck").exists() or visible(tmp_path / "ck") == []


def test_without_a_run_control_nothing_is_written_and_a_stop_returns_normally(tmp_path: Path) -> None:
    data, spec = stored_dataset(tmp_path), job_spec(epochs=5)
    recorder = Recorder(stop_at=("epoch", 1, StopReason.CANCEL))
    result = train(spec, data, FEATURES, TARGET, recorder.progress)
    assert result.epochs_run == 1 and result.resumed_from is None
    assert recorder.progress.stop_reason is StopReason.CANCEL
    assert recorder.progress.batches_done == BATCHES_PER_EPOCH
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.npy", "target.npy"]


def test_early_stoppings_best_weights_survive_a_resume(tmp_path: Path) -> None:
    # Only the first epoch counts as an improvement: training ends on epoch 1's weights, which
    # attempt 2 never saw unless the checkpoint carried them.
    data = stored_dataset(tmp_path)
    stopping = {"monitor": "val_loss", "patience": 10, "min_delta": 10, "restore_best_weights": True}
    spec = job_spec(epochs=4, early_stopping=stopping)
    after_epoch_one = straight(job_spec(epochs=1, early_stopping=stopping), data, tmp_path / "one")

    _, _, resumed = stop_then_resume(spec, data, tmp_path / "ck", ("epoch", 2, StopReason.HAND_BACK))

    assert_same_weights(resumed.model, after_epoch_one.model)


def test_a_model_with_several_outputs_resumes_inside_an_epoch(tmp_path: Path) -> None:
    x, _ = classification_arrays(rows=ROWS)
    save_arrays(tmp_path, x, np.column_stack([x[:, 0] + x[:, 1], x[:, 2] * 2]).astype(np.float32))
    target = {"shape": [2], "dtype": "float32", "columns": ["p", "q"]}
    spec = TrainingSpec.model_validate(
        {
            "model": {
                "inputs": [{"name": "features"}],
                "layers": [
                    {"type": "Dense", "name": "hidden", "units": 8, "activation": "relu", "inputs": ["features"]},
                    {"type": "Dense", "name": "p", "units": 1, "inputs": ["hidden"]},
                    {"type": "Dense", "name": "q", "units": 1, "inputs": ["hidden"]},
                ],
                "outputs": [{"node": "p", "columns": ["p"]}, {"node": "q", "columns": ["q"]}],
            },
            "compile": {"optimizer": "adam", "loss": "mse"},
            "fit": {"epochs": 2, "batch_size": 16, "seed": 5, "validation_split": 0.25, "steps_per_execution": 1},
        }
    )
    plain = Recorder()
    expected = train(spec, tmp_path, FEATURES, target, plain.progress, plain.run(tmp_path / "straight"))
    first = Recorder(("checkpoint", 3, StopReason.HAND_BACK))
    with pytest.raises(TrainingStopped):
        train(spec, tmp_path, FEATURES, target, first.progress, first.run(tmp_path / "ck", every_s=0))
    second = Recorder()
    resume_from = latest_checkpoint(tmp_path / "ck", max_attempt=2)
    run = second.run(tmp_path / "ck", attempt=2, resume_from=resume_from)
    resumed = train(spec, tmp_path, FEATURES, target, second.progress, run)

    assert resume_from is not None and resume_from.batch == 4
    assert_same_weights(resumed.model, expected.model)


def test_without_a_run_control_early_stopping_still_restores_its_best_weights(tmp_path: Path) -> None:
    data = stored_dataset(tmp_path)
    stopping = {"monitor": "val_loss", "patience": 10, "min_delta": 10, "restore_best_weights": True}
    after_epoch_one = train(job_spec(epochs=1, early_stopping=stopping), data, FEATURES, TARGET, Recorder().progress)
    result = train(job_spec(epochs=3, early_stopping=stopping), data, FEATURES, TARGET, Recorder().progress)
    assert_same_weights(result.model, after_epoch_one.model)


def test_a_durable_runs_batch_hooks_get_the_steps_logs_unconverted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Converting a step's logs to floats waits for the step: on JAX the next one could not be
    # queued meanwhile. Keras converts them whenever a callback must run on the training thread
    # (the Checkpointer must); DurableCallbacks hands them over as they are.
    seen: list[type] = []
    batch_end = ProgressCallback.on_train_batch_end

    def recorded(self: ProgressCallback, batch: int, logs: dict[str, Any] | None = None) -> None:
        seen.append(type((logs or {}).get("loss")))
        batch_end(self, batch, logs)

    monkeypatch.setattr(ProgressCallback, "on_train_batch_end", recorded)
    result = straight(job_spec(epochs=2), stored_dataset(tmp_path), tmp_path / "ck")

    assert len(seen) == 2 * BATCHES_PER_EPOCH
    assert float not in seen and type(None) not in seen  # tensors, as the step returned them
    assert set(result.final_logs) >= {"loss", "accuracy"}  # the epoch's logs are still floats
    assert all(isinstance(v, float) for k, v in result.final_logs.items() if k in ("loss", "accuracy"))
