"""Run one job attempt in a worker child: claim it, resume from its checkpoint, train under a
watch (lease, cancel, runtime, progress, shutdown), save, register, record the end.

Keras is imported inside the functions, never at module import: the Celery prefork parent
imports this module, and TensorFlow imported before a fork hangs the child (DESIGN.md).
"""

import dataclasses
import functools
import logging
import os
import shutil
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets import repository as datasets
from app.db.base import utcnow
from app.db.session import session_scope
from app.jobs import dispatch, repository, states
from app.jobs.distill import distilled_lineage
from app.jobs.recorder import Recorder
from app.jobs.repository import Heartbeat
from app.jobs.states import Actor, Move, ResumePoint
from app.logs import job_context
from app.ml.checkpoints import CheckpointGone, CheckpointInfo, latest_checkpoint, read_state
from app.ml.run_control import PerformanceRecord
from app.ml.spec import TrainingSpec
from app.models import Dataset, Job, JobStatus
from app.serving.signature import ServedVersion, TensorSpec

if TYPE_CHECKING:
    from app.ml.training import ProgressCallback, StopReason

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def checkpoint_dir(settings: Settings, job_id: str) -> Path:
    return settings.artifacts_dir / "jobs" / job_id / "checkpoints"


def run_job(settings: Settings, job_id: str) -> JobStatus | None:
    """Train job `job_id` if this delivery can claim it. Returns its final status, or None when
    the job was not ours to run (a duplicate delivery, already final, cancelled), or when this
    attempt ended without an outcome (handed back, or fenced off after losing its lease)."""
    with job_context(job_id), _ShutdownSignals() as shutdown:
        lease = timedelta(seconds=settings.job_lease_s)
        checkpoint = _newest_checkpoint(settings, job_id)
        with session_scope(settings.sqlalchemy_url) as session:
            job = states.claim(session, job_id, worker_name(), lease, settings.max_attempts, _resume_point(checkpoint))
        if job is None:
            log.info("job not claimable (duplicate delivery, final or cancelled): skipped")
            return None
        if job.resumed_from_epoch is None:
            checkpoint = None
        log.info("claimed, attempt %s%s", job.attempt, f", resuming from {checkpoint.path.name}" if checkpoint else "")
        try:
            if job.kind == "compress":  # no epochs to resume: a compression starts over
                from app.compress.runner import run_compress

                return run_compress(settings, job, lease, shutdown)
            return _train_claimed(settings, job, lease, checkpoint, shutdown)
        except CheckpointGone as exc:
            log.warning("%s: this attempt is given up and the job retried", exc)
            _release(settings, job, str(exc))
            return None
        except Exception as exc:
            log.exception("training failed")
            return _finish(settings, job, Move.FAIL, error=_describe(exc))


def _newest_checkpoint(settings: Settings, job_id: str) -> CheckpointInfo | None:
    with session_scope(settings.sqlalchemy_url) as session:
        job = repository.get(session, job_id)
        if job is None:
            return None
        attempt = job.attempt
    try:
        return latest_checkpoint(checkpoint_dir(settings, job_id), max_attempt=attempt)
    except OSError:
        log.warning("could not read the job's checkpoints; starting from epoch 0", exc_info=True)
        return None


def _resume_point(checkpoint: CheckpointInfo | None) -> ResumePoint | None:
    if checkpoint is None:
        return None
    try:
        history = read_state(checkpoint.path).get("history") or {}
    except (OSError, ValueError):
        history = {}  # gone or unreadable: the resume itself will say so
    return ResumePoint(
        attempt=checkpoint.attempt,
        epoch=checkpoint.epoch,
        batch=checkpoint.batch,
        saved_at=checkpoint.saved_at,
        history={int(epoch): logs for epoch, logs in history.items()},
    )


def _train_claimed(
    settings: Settings, job: Job, lease: timedelta, checkpoint: CheckpointInfo | None, shutdown: "_ShutdownSignals"
) -> JobStatus | None:
    from app.ml import distribution, training  # Keras: imported in the child process only

    spec = TrainingSpec.model_validate(job.spec)
    with session_scope(settings.sqlalchemy_url) as session:
        dataset = datasets.get(session, job.dataset_id)
    if dataset is None:
        raise RuntimeError(f"dataset {job.dataset_id} was deleted before the job started")
    teacher_path = _teacher_path(settings, job) if spec.distill is not None else None

    # Rows trained per epoch, for the throughput shown on /metrics (the splits are rounded the
    # same way to within a row; a resumed partial epoch counts as a whole one).
    samples = max(1, round(dataset.n_rows * (1 - spec.fit.validation_split - spec.fit.test_split)))

    # The rows below are written by the recorder's thread, in order: the training thread only
    # queues them (a commit per epoch, fsynced, cost small models 10 % of their fit throughput).
    recorder = Recorder(name=f"recorder-{job.id}")

    def record_epoch(epoch: int, logs: dict[str, float | str]) -> None:
        seconds = time.monotonic() - progress.epoch_began_at
        write = functools.partial(_write_epoch, settings, job, spec, epoch, logs, seconds, samples, utcnow())
        recorder.submit(write)

    def record_checkpoint(info: CheckpointInfo) -> None:
        watch.note_checkpoint()
        recorder.submit(functools.partial(_write_checkpoint, settings, job, info))

    def record_performance(record: PerformanceRecord) -> None:
        recorder.submit(functools.partial(_write_performance, settings, job, record))

    progress = training.ProgressCallback(on_epoch=record_epoch)
    watch = _AttemptWatch(settings, job, lease, progress, recorder)
    run = training.RunControl(
        attempt=job.attempt,
        checkpoint_dir=checkpoint_dir(settings, job.id),
        checkpoint_every_s=job.checkpoint_every_s or settings.checkpoint_every_s,
        resume_from=checkpoint,
        may_write=watch.holds_lease,
        on_checkpoint=record_checkpoint,
        on_performance=record_performance,
        device_data_share=settings.device_data_share,
    )
    # The lease is renewed until the job's outcome is recorded: saving a large model to a
    # shared volume can take longer than the lease.
    watch.start()
    shutdown.attach(progress)
    try:
        refused = _check_large_spec(settings, spec, dataset)
        if refused is not None:
            return _finish(settings, job, Move.FAIL, error=refused)
        # How training ended early: recorded only once the recorder has written every row.
        ended: Callable[[], JobStatus | None] | None
        try:
            with distribution.placed(job.gpus) as placement:
                _record_resources(settings, job, placement.report)
                teacher = _load_teacher(teacher_path) if teacher_path is not None else None
                result = training.train(
                    spec,
                    settings.datasets_dir / dataset.storage_path,
                    dataset.features,
                    dataset.target,
                    progress,
                    run,
                    placement,
                    teacher=teacher,
                )
                placement.note_trained(result.model)
            _record_resources(settings, job, placement.report)  # now with peak memory, rows left out
        except training.TrainingStopped as stopped:
            ended = functools.partial(_stopped, settings, job, watch, stopped.reason, stopped.epochs_done)
        except training.TrainingDiverged as diverged:  # the message is the advice: no traceback
            log.warning("%s", diverged)
            ended = functools.partial(_finish, settings, job, Move.FAIL, error=str(diverged))
        else:
            ended = None
        finally:
            watch.training_done = True  # saving and registering have no batches: no stall watch
            # No more rows come from training: every one is committed before the outcome is
            # (an outcome recorded first would fence the last epochs' rows out).
            _close_recorder(settings, recorder)
        if ended is not None:
            return ended()
        if progress.stop_reason is not None and progress.stop_reason != training.StopReason.HAND_BACK:
            # Asked to stop after the last batch (during the test evaluation, say).
            return _stopped(settings, job, watch, progress.stop_reason, result.epochs_run)
        return _save_register(settings, job, dataset, result, watch)
    finally:
        watch.stop()
        recorder.close(timeout=0)  # ends its thread where training never started (nothing queued)


def _write_epoch(
    settings: Settings,
    job: Job,
    spec: TrainingSpec,
    epoch: int,
    logs: dict[str, float | str],
    seconds: float,
    samples: int,
    finished_at: datetime,
) -> None:
    log.info("epoch %s/%s %s (%.2f s)", epoch, spec.fit.epochs, logs, seconds)
    # A database hiccup must not end a days-long fit: retry once, then go on without this
    # epoch's row (the heartbeat keeps the lease; the next epoch writes again, and a resume
    # restores it from the checkpoint's history).
    for attempt in (1, 2):
        try:
            with session_scope(settings.sqlalchemy_url) as session:
                if not repository.record_epoch(
                    session, job.id, job.attempt, epoch, logs, seconds, samples, finished_at=finished_at
                ):
                    log.warning("epoch %s not recorded: this attempt no longer owns the job", epoch)
            return
        except Exception:
            log.warning("could not record epoch %s (try %s of 2)", epoch, attempt, exc_info=True)


def _write_checkpoint(settings: Settings, job: Job, info: CheckpointInfo) -> None:
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            repository.record_checkpoint(session, job.id, job.attempt, info.epoch, info.batch, info.saved_at)
    except Exception:  # the file is what resumes; the row only shows it
        log.warning("could not record checkpoint %s", info.path.name, exc_info=True)


def _write_performance(settings: Settings, job: Job, record: PerformanceRecord) -> None:
    log.info("performance %s", record.model_dump_json())
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            repository.record_performance(session, job.id, job.attempt, record.model_dump(mode="json"))
    except Exception:  # shown on the job only: training goes on without it
        log.warning("could not record the performance settings", exc_info=True)


def _close_recorder(settings: Settings, recorder: Recorder, timeout: float | None = None) -> None:
    """Wait for the attempt's queued rows (at most a lease: a database that takes no write for
    that long takes no outcome either, and a row that lands late is fenced off by its status)."""
    if not recorder.close(settings.job_lease_s if timeout is None else timeout):
        log.warning("%s progress row(s) still unwritten when the attempt's outcome is recorded", recorder.pending)


def _teacher_path(settings: Settings, job: Job) -> Path:
    """The model file of the distillation job's teacher (the version resolved at the door)."""
    from app.jobs.distill import teacher_version

    with session_scope(settings.sqlalchemy_url) as session:
        version = teacher_version(session, job)
        return settings.artifacts_dir / version.artifact_path


def _load_teacher(path: Path) -> Any:
    from app.ml.distill import load_teacher  # Keras: in the child process only

    return load_teacher(str(path))


def _record_resources(settings: Settings, job: Job, report: Any) -> None:
    log.info("devices: %s", report)
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            repository.record_resources(session, job.id, job.attempt, report.as_dict())
    except Exception:  # shown on the job only; training goes on
        log.warning("could not record the job's devices", exc_info=True)


def _check_large_spec(settings: Settings, spec: TrainingSpec, dataset: Dataset) -> str | None:
    """The door builds and dry-runs only specs of up to TRAINYARD_DOOR_BUILD_MAX_LAYERS layers,
    so that it answers fast; a larger one gets the same checks here, as the job's first step.
    Returns why the spec cannot train (the field's path first), or None."""
    if spec.layer_count() <= settings.door_build_max_layers:
        return None
    from app.ml.spec import SpecError
    from app.ml.validation import check_against_dataset  # Keras: in the child process only

    try:
        check_against_dataset(
            spec, dataset.features, dataset.target, settings.max_params, settings.max_activation_bytes
        )
    except SpecError as exc:
        log.info("spec refused by the first-step check: %s", exc)
        return f"{exc.path}: {exc.message}"
    return None


def _stopped(
    settings: Settings, job: Job, watch: "_AttemptWatch", reason: "StopReason", epochs_done: int
) -> JobStatus | None:
    from app.ml.training import StopReason

    if reason is StopReason.LEASE_LOST or watch.lease_lost:
        log.warning("lost the job's lease; this attempt stopped and wrote nothing more")
        return None
    if reason is StopReason.CANCEL:
        status = _finish(settings, job, Move.CANCEL, detail=f"cancelled after {epochs_done} epoch(s)")
        if status is JobStatus.CANCELLED:
            _remove_checkpoints(settings, job.id)
        return status
    if reason is StopReason.TIMED_OUT:
        return _finish(settings, job, Move.TIME_OUT, error=watch.timeout_reason())
    _hand_back(settings, job, "the worker is shutting down")
    return None


def _hand_back(settings: Settings, job: Job, why: str) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        current = _still_ours(session, job)
        if current is None:
            return
        at = _checkpoint_words(current)
        if states.hand_back(session, current, f"{why}; {at}"):
            dispatch.publish(session, settings, current)
            log.info("handed back (%s)", at)


def _checkpoint_words(job: Job) -> str:
    if job.checkpoint_epoch is None:
        return "no checkpoint yet: the next attempt starts at epoch 1"
    batch = f", batch {job.checkpoint_batch}" if job.checkpoint_batch else ""
    return f"checkpoint at epoch {job.checkpoint_epoch}{batch} of attempt {job.checkpoint_attempt}"


def _save_register(
    settings: Settings, job: Job, dataset: Dataset, result: Any, watch: "_AttemptWatch"
) -> JobStatus | None:
    from app.ml import training

    if watch.lease_lost:
        log.warning("lost the job's lease while training; the result is discarded")
        return None
    relative = Path("jobs") / job.id / f"attempt-{job.attempt}" / "model.keras"
    artifact = settings.artifacts_dir / relative
    training.save_atomically(result.model, artifact)
    serving = _export_for_serving(result.model, relative, settings)
    signature = dict(
        serving.signature,
        classes=dataset.target.get("classes"),
        columns=_row_columns(dataset, serving.signature, result.fill_values),
    )
    serving_path = relative.with_name("model.onnx") if serving.path is not None else None
    registered: dict[str, Any] = {
        "serving_runtime": serving.runtime,
        "serving_path": str(serving_path) if serving_path else None,
        "serving_check": serving.check,
    }
    lineage = distilled_lineage(job)
    if lineage is not None:  # a student: where it came from, and its bill beside its teacher's
        registered["lineage"] = lineage.model_dump(mode="json")
        registered["bill"] = _student_bill(settings, job, dataset, result.model, serving, artifact, signature)
    with session_scope(settings.sqlalchemy_url) as session:
        version = states.succeed_and_register(
            session,
            job,
            str(relative),
            signature,
            result.final_logs,
            serving=registered,
            importance=dataclasses.asdict(result.importance) if result.importance is not None else None,
        )
    if version is None:
        artifact.unlink(missing_ok=True)
        if serving.path is not None:
            serving.path.unlink(missing_ok=True)
        log.info("the job was cancelled or reclaimed while saving; model discarded")
        return _finish(settings, job, Move.CANCEL, detail="cancelled while saving")
    log.info("succeeded: registered %s version %s", version.name, version.version)
    _remove_checkpoints(settings, job.id)
    return JobStatus.SUCCEEDED


def _student_bill(
    settings: Settings, job: Job, dataset: Dataset, model: Any, serving: Any, artifact: Path, signature: dict[str, Any]
) -> dict[str, Any] | None:
    """A distilled version's bill (app.compress.bill), measured like a compressed one's, on the rows its
    own job held out. A bill that cannot be measured leaves the version without one: the student
    is still registered."""
    from app.compress import bill

    try:
        spec = TrainingSpec.model_validate(job.spec)
        held_out = bill.held_out_split(
            spec, settings.datasets_dir / dataset.storage_path, dataset.features, dataset.target
        )
        served = ServedVersion(
            name=job.register_as or job.name,
            version=0,
            runtime=serving.runtime,
            path=serving.path if serving.path is not None else artifact,
            inputs=tuple(TensorSpec.of(spec) for spec in signature["inputs"]),
            outputs=tuple(TensorSpec.of(spec) for spec in signature["outputs"]),
        )
        return bill.measure_bill(model, served, artifact, held_out).model_dump(mode="json")
    except Exception:
        log.warning("could not measure the distilled version's bill", exc_info=True)
        return None


def _remove_checkpoints(settings: Settings, job_id: str) -> None:
    """A job that ended succeeded or cancelled will not resume: its checkpoints go. (Failed and
    timed-out jobs keep theirs.)"""
    shutil.rmtree(checkpoint_dir(settings, job_id), ignore_errors=True)


def _row_columns(
    dataset: Dataset, signature: dict[str, Any], fill_values: list[float] | None
) -> list[dict[str, Any]] | None:
    """The dataset's feature columns, when the model takes its rows whole: predict may then key
    rows by column name, send categories as text, and leave cells empty that training filled."""
    columns = dataset.features.get("columns")
    inputs = signature.get("inputs") or []
    if not columns or len(inputs) != 1 or list(inputs[0]["shape"][1:]) != [len(columns)]:
        return None
    described = dataset.features.get("column_types") or [{"name": c, "kind": "numeric"} for c in columns]
    if fill_values is None:
        return described
    return [dict(column, fill=fill) for column, fill in zip(described, fill_values, strict=True)]


def _export_for_serving(model: Any, relative: Path, settings: Settings) -> Any:
    """Export the inference artifact beside model.keras, checked against the model (app.ml)."""
    from app.ml import export  # Keras: imported in the child process only

    onnx_path = settings.artifacts_dir / relative.with_name("model.onnx")
    result = export.export_for_serving(model, onnx_path)
    log.info("serving runtime %s (%s)", result.runtime, result.check)
    return result


def _still_ours(session: Session, job: Job) -> Job | None:
    """The job as it is now, if this attempt still runs it; None once anyone moved it on."""
    current = repository.get(session, job.id)
    if current is None or current.attempt != job.attempt or current.status != JobStatus.RUNNING:
        return None
    return current


def _release(settings: Settings, job: Job, reason: str) -> None:
    """Give this attempt up as lost: queued again (or failed after max_attempts)."""
    with session_scope(settings.sqlalchemy_url) as session:
        current = _still_ours(session, job)
        if current is None:
            return
        move = states.release_lost(
            session, current, reason, Actor.WORKER, settings.max_attempts, settings.max_job_runtime_s
        )
        if move is Move.REQUEUE:
            dispatch.publish(session, settings, repository.get(session, job.id) or current)


def _finish(
    settings: Settings, job: Job, move: Move, error: str | None = None, detail: str | None = None
) -> JobStatus | None:
    with session_scope(settings.sqlalchemy_url) as session:
        current = _still_ours(session, job)
        if current is None:
            return None
        if not states.finish(session, current, move, Actor.WORKER, error=error, detail=detail):
            return None
    status = states.TRANSITIONS[move].target
    log.info("ended %s%s", status.value, f": {error}" if error else "")
    return status


def _describe(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip()[:MAX_ERROR_CHARS]


class _ShutdownSignals:
    """SIGTERM (a deploy, `docker stop`, the worker's main process shutting down) or SIGINT
    (Ctrl-C reaches the whole process group) while this child runs a job: training checkpoints
    at the next batch and the job is handed back. Installed before the claim, so a signal that
    arrives while the data loads is not lost either."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._progress: ProgressCallback | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_ShutdownSignals":
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *_: object) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)

    def attach(self, progress: "ProgressCallback") -> None:
        self._progress = progress
        if self.requested.is_set():
            self._stop_training()

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested.set()
        if self._progress is not None:
            self._stop_training()

    def _stop_training(self) -> None:
        from app.ml.training import StopReason

        assert self._progress is not None
        self._progress.request_stop(StopReason.HAND_BACK)


class _AttemptWatch(threading.Thread):
    """Watches the attempt while it trains, every `heartbeat_s`:

    - renews the lease; a cancel asks training to stop; a lease that could not be renewed for
      `job_lease_s` (or was taken over) fences this attempt off: it stops and writes nothing;
    - past the job's runtime limit (time across attempts), training stops as timed out;
    - no finished batch (nor checkpoint) for `stall_timeout_s` from the claim until training
      ends, data loading included: the attempt is given up as lost
      (retried, or failed after max_attempts) and this process ends itself;
    - a stop that training does not honour within `shutdown_grace_s` (a batch that never ends):
      the outcome is recorded from here and this process ends itself, freeing the worker slot
      (after the rows `recorder` still holds, for at most a heartbeat).
    """

    def __init__(
        self,
        settings: Settings,
        job: Job,
        lease: timedelta,
        progress: "ProgressCallback",
        recorder: Recorder | None = None,
    ) -> None:
        super().__init__(name=f"watch-{job.id}", daemon=True)
        self._recorder = recorder
        self._settings = settings
        self._job = job
        self._lease = lease
        self._progress = progress
        self._done = threading.Event()
        self._began = time.monotonic()
        self._last_renewed = self._began
        self._stop_asked_at: float | None = None
        self._runtime_limit = states.runtime_limit(job, settings.max_job_runtime_s)
        self._stall_timeout = job.stall_timeout_s or settings.stall_timeout_s
        self._has_checkpoint = job.checkpoint_epoch is not None
        self.lease_lost = False
        self.training_done = False

    def note_checkpoint(self) -> None:
        self._has_checkpoint = True
        self._progress.touch()  # a long checkpoint write is progress, not a stall

    def holds_lease(self) -> bool:
        """Whether this attempt may still write (checkpoints): its lease was renewed recently
        enough that no other worker can have taken the job."""
        margin = min(self._settings.heartbeat_s, self._lease.total_seconds() / 4)
        return not self.lease_lost and time.monotonic() - self._last_renewed < self._lease.total_seconds() - margin

    def runtime_s(self) -> float:
        return self._job.runtime_s + time.monotonic() - self._began

    def timeout_reason(self) -> str:
        kept = "the last checkpoint is kept" if self._has_checkpoint else "no checkpoint had been written"
        return f"ran {self.runtime_s():.0f} s, past its max_runtime_s of {self._runtime_limit} s; {kept}"

    def run(self) -> None:
        with job_context(self._job.id):
            while not self._done.wait(self._settings.heartbeat_s):
                self._beat()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)

    def _beat(self) -> None:
        from app.ml.training import StopReason

        signal_ = self._renew()
        if signal_ is Heartbeat.LOST or time.monotonic() - self._last_renewed >= self._lease.total_seconds():
            if not self.lease_lost:
                log.warning("could not renew the lease for %.0f s: fenced off, stopping", self._lease.total_seconds())
            self.lease_lost = True
            self._ask(StopReason.LEASE_LOST)
        elif signal_ is Heartbeat.CANCEL:
            self._ask(StopReason.CANCEL)
        if self.runtime_s() >= self._runtime_limit:
            self._ask(StopReason.TIMED_OUT)
        # From the claim on: a read that never returns while the data loads is a stall too.
        if not self.training_done and time.monotonic() - self._progress.last_batch_at >= self._stall_timeout:
            self._end_here(f"no progress for {self._stall_timeout} s (no batch finished)", stalled=True)
        if (
            self._stop_asked_at is not None
            and time.monotonic() - self._stop_asked_at >= self._settings.shutdown_grace_s
        ):
            grace = self._settings.shutdown_grace_s
            self._end_here(f"training did not stop within {grace:.0f} s of a {self._progress.stop_reason} request")

    def _renew(self) -> Heartbeat | None:
        # The lease runs from when the renewal was sent, not from when its answer was read: a
        # process frozen (SIGSTOP) between the two would otherwise wake believing it holds a
        # lease that expired while it slept, and write checkpoints for a job another worker runs.
        sent = time.monotonic()
        try:
            with session_scope(self._settings.sqlalchemy_url) as session:
                signal_ = repository.renew_lease(session, self._job.id, self._job.attempt, self._lease)
        except Exception:
            log.warning("could not renew the lease; will retry", exc_info=True)
            return None
        if signal_ is not Heartbeat.LOST:
            self._last_renewed = sent
        return signal_

    def _ask(self, reason: "StopReason") -> None:
        if self._progress.stop_reason is None:
            log.info("asking training to stop: %s", reason.value)
        self._progress.request_stop(reason)
        if self._stop_asked_at is None:
            self._stop_asked_at = time.monotonic()

    def _end_here(self, reason: str, stalled: bool = False) -> None:
        """Record the attempt's end from this thread, then end the process: the training thread
        is stuck where no request can reach it."""
        log.error("%s: ending this attempt from its watch", reason)
        if not self.lease_lost and self._recorder is not None:
            # The rows training queued go first; a heartbeat's wait at most (the training
            # thread is stuck, but the recorder's is not, unless the database is).
            _close_recorder(self._settings, self._recorder, timeout=self._settings.heartbeat_s)
        if not self.lease_lost:
            try:
                self._record_end(reason, stalled)
            except Exception:
                log.exception("could not record the attempt's end; its lease will expire instead")
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)

    def _record_end(self, reason: str, stalled: bool) -> None:
        from app.ml.training import StopReason

        stop = self._progress.stop_reason
        settings = self._settings
        with session_scope(settings.sqlalchemy_url) as session:
            job = _still_ours(session, self._job)
            if job is None:
                return
            if stop is StopReason.CANCEL and not stalled:
                states.finish(session, job, Move.CANCEL, detail=reason)
            elif stop is StopReason.TIMED_OUT and not stalled:
                states.finish(session, job, Move.TIME_OUT, error=self.timeout_reason())
            elif stop is StopReason.HAND_BACK and not stalled:
                if states.hand_back(session, job, f"{reason}; {_checkpoint_words(job)}"):
                    dispatch.publish(session, settings, job)
            else:
                move = states.release_lost(
                    session, job, reason, Actor.WORKER, settings.max_attempts, settings.max_job_runtime_s
                )
                if move is Move.REQUEUE:
                    dispatch.publish(session, settings, job)
