"""Run one job on a worker: claim it, train with heartbeats, save, register, record the end.

Keras is imported inside `run_job`, never at module import: the Celery prefork parent imports
this module, and TensorFlow imported before a fork hangs the child (DESIGN.md).
"""

import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.datasets import repository as datasets
from app.db.base import utcnow
from app.db.session import session_scope
from app.jobs import repository
from app.jobs.repository import Heartbeat
from app.logs import job_context
from app.ml.spec import TrainingSpec
from app.models import Dataset, Job, JobStatus

if TYPE_CHECKING:
    from app.ml.training import ProgressCallback

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(settings: Settings, job_id: str) -> JobStatus | None:
    """Train job `job_id` if this worker can claim it. Returns its final status, or None when
    the job was not ours to run (a duplicate delivery, already final, or cancelled)."""
    with job_context(job_id):
        url = settings.sqlalchemy_url
        lease = timedelta(seconds=settings.job_lease_s)
        with session_scope(url) as session:
            job = repository.claim(session, job_id, worker_name(), lease, settings.max_attempts)
        if job is None:
            log.info("job not claimable (duplicate delivery, final or cancelled): skipped")
            return None
        log.info("claimed, attempt %s", job.attempt)
        try:
            return _train_claimed(settings, job, lease)
        except Exception as exc:
            log.exception("training failed")
            return _finish(settings, job, JobStatus.FAILED, error=_describe(exc))


def _train_claimed(settings: Settings, job: Job, lease: timedelta) -> JobStatus | None:
    from app.ml import training  # Keras: imported in the child process only

    spec = TrainingSpec.model_validate(job.spec)
    with session_scope(settings.sqlalchemy_url) as session:
        dataset = datasets.get(session, job.dataset_id)
    if dataset is None:
        raise RuntimeError(f"dataset {job.dataset_id} was deleted before the job started")

    def record_epoch(epoch: int, logs: dict[str, float | str]) -> None:
        log.info("epoch %s/%s %s", epoch, spec.fit.epochs, logs)
        # A database hiccup must not end a days-long fit: retry once, then go on without
        # this epoch's row (the heartbeat keeps the lease; the next epoch writes again).
        for attempt in (1, 2):
            try:
                with session_scope(settings.sqlalchemy_url) as session:
                    repository.record_epoch(session, job.id, job.attempt, epoch, logs)
                return
            except Exception:
                log.warning("could not record epoch %s (try %s of 2)", epoch, attempt, exc_info=True)

    progress = training.ProgressCallback(on_epoch=record_epoch)
    # The lease is renewed until the job's outcome is recorded: saving a large model to a
    # shared volume can take longer than the lease.
    heartbeat = _HeartbeatThread(settings, job, lease, progress.request_stop)
    heartbeat.start()
    try:
        return _train_save_register(settings, job, spec, dataset, progress, heartbeat)
    finally:
        heartbeat.stop()


def _train_save_register(
    settings: Settings,
    job: Job,
    spec: TrainingSpec,
    dataset: Dataset,
    progress: "ProgressCallback",
    heartbeat: "_HeartbeatThread",
) -> JobStatus | None:
    from app.ml import training

    dataset_dir = settings.datasets_dir / dataset.storage_path
    result = training.train(spec, dataset_dir, dataset.features, dataset.target, progress)
    if heartbeat.signal is Heartbeat.LOST:
        log.warning("lost the job's lease while training; the result is discarded")
        return None
    if progress.stop_requested:
        return _finish(
            settings,
            job,
            JobStatus.CANCELLED,
            detail=f"cancelled after {result.epochs_run} epoch(s)",
        )

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
    with session_scope(settings.sqlalchemy_url) as session:
        version = repository.succeed_and_register(
            session,
            job,
            str(relative),
            signature,
            result.final_logs,
            serving={
                "serving_runtime": serving.runtime,
                "serving_path": str(serving_path) if serving_path else None,
                "serving_check": serving.check,
            },
        )
    if version is None:
        artifact.unlink(missing_ok=True)
        if serving.path is not None:
            serving.path.unlink(missing_ok=True)
        log.info("the job was cancelled or reclaimed while saving; model discarded")
        return _finish(settings, job, JobStatus.CANCELLED, detail="cancelled while saving")
    log.info("succeeded: registered %s version %s", version.name, version.version)
    return JobStatus.SUCCEEDED


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


def _finish(
    settings: Settings,
    job: Job,
    status: JobStatus,
    error: str | None = None,
    detail: str | None = None,
) -> JobStatus | None:
    with session_scope(settings.sqlalchemy_url) as session:
        current = repository.get(session, job.id)
        if current is None or current.attempt != job.attempt or current.status != JobStatus.RUNNING:
            return None
        if not repository.transition(
            session,
            current,
            status,
            detail=detail or error,
            error=error,
            finished_at=utcnow(),
            lease_expires_at=None,
        ):
            return None
    log.info("ended %s%s", status.value, f": {error}" if error else "")
    return status


def _describe(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip()[:MAX_ERROR_CHARS]


class _HeartbeatThread(threading.Thread):
    """Renews the job's lease every `heartbeat_s` and calls `stop` on cancel or a lost lease."""

    def __init__(self, settings: Settings, job: Job, lease: timedelta, stop: Callable[[], None]) -> None:
        super().__init__(name=f"heartbeat-{job.id}", daemon=True)
        self._settings = settings
        self._job = job
        self._lease = lease
        self._stop_training = stop
        self._done = threading.Event()
        self.signal = Heartbeat.KEEP_GOING

    def run(self) -> None:
        with job_context(self._job.id):
            while not self._done.wait(self._settings.heartbeat_s):
                try:
                    with session_scope(self._settings.sqlalchemy_url) as session:
                        signal = repository.renew_lease(session, self._job.id, self._job.attempt, self._lease)
                except Exception:
                    log.exception("heartbeat failed; will retry")
                    continue
                if signal is not Heartbeat.KEEP_GOING:
                    self.signal = signal
                    log.info("heartbeat says %s: stopping training", signal.value)
                    self._stop_training()
                    return

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)
