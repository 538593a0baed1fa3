"""Submitting, reading and cancelling jobs: what happens behind /v1/jobs."""

import hashlib
import json
import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import queue
from app.config import Settings
from app.datasets import repository as datasets
from app.db.base import utcnow
from app.db.pagination import Page
from app.errors import Conflict, InvalidInput, NotFound
from app.jobs import repository
from app.jobs.schemas import JobCreate
from app.ml.spec import SpecError
from app.ml.validation import check_against_dataset
from app.models import Job, JobEpoch, JobEvent, JobStatus

log = logging.getLogger(__name__)


def submit(session: Session, settings: Settings, request: JobCreate, idempotency_key: str | None) -> Job:
    """Validate against the dataset, commit the job row, then send its id to the queue.

    Blocking (builds the model to check it): call from a worker thread.
    Raises NotFound (unknown dataset), InvalidInput (spec cannot train on it), Conflict
    (idempotency key reused with a different request).
    """
    request_hash = _request_hash(request)
    if idempotency_key:
        existing = repository.get_by_idempotency_key(session, idempotency_key)
        if existing is not None:
            return _same_request_or_conflict(existing, request_hash)

    # Locked until the job commits, so a concurrent DELETE sees the job and answers 409.
    dataset = datasets.get(session, request.dataset_id, for_update=True)
    if dataset is None:
        raise NotFound(f"dataset {request.dataset_id} does not exist")
    spec = request.training_spec()
    try:
        check_against_dataset(spec, dataset.features, dataset.target, settings.max_params)
    except SpecError as exc:
        raise InvalidInput(
            f"{exc.path}: {exc.message}", detail=[{"loc": exc.path.split("."), "msg": exc.message}]
        ) from exc

    job = Job(
        name=request.name or "",
        dataset_id=dataset.id,
        spec=spec.model_dump(mode="json"),
        request_hash=request_hash,
        register_as=request.register_as or request.name or "",
        queue=queue.GPU_TRAINING_QUEUE if request.gpu else queue.TRAINING_QUEUE,
        idempotency_key=idempotency_key,
        epochs=spec.fit.epochs,
        status=JobStatus.QUEUED,
    )
    session.add(job)
    session.flush()
    job.name = job.name or f"job-{job.id}"
    job.register_as = job.register_as or job.name
    session.add(
        JobEvent(
            job_id=job.id,
            from_status=None,
            to_status=JobStatus.QUEUED,
            attempt=0,
            detail="submitted",
        )
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = repository.get_by_idempotency_key(session, idempotency_key or "")
        if existing is None:
            raise
        return _same_request_or_conflict(existing, request_hash)
    send(session, settings, job)
    return job


def send(session: Session, settings: Settings, job: Job) -> bool:
    """Enqueue a committed job. On a broker failure the job stays queued with `enqueued_at`
    unset, and the recovery sweep sends it later: the job is never lost."""
    try:
        queue.enqueue(settings, job.id, job.queue)
    except Exception:
        log.exception("could not reach the broker for job %s; the sweep will resend it", job.id)
        return False
    repository.mark_enqueued(session, job.id)
    return True


def get(session: Session, job_id: str) -> Job:
    job = repository.get(session, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return job


def list_page(session: Session, limit: int, cursor: str | None, **filters: Any) -> Page[Job]:
    return repository.list_page(session, limit, cursor, **filters)


def epochs(session: Session, job_id: str) -> tuple[int, list[dict[str, Any]]]:
    job = get(session, job_id)
    rows: list[JobEpoch] = list(repository.epochs(session, job_id, job.attempt))
    return job.attempt, [{"epoch": row.epoch, **row.logs, "finished_at": row.created_at.isoformat()} for row in rows]


def events(session: Session, job_id: str) -> list[JobEvent]:
    get(session, job_id)
    return list(repository.events(session, job_id))


def cancel(session: Session, job_id: str) -> Job:
    """Cancel: a queued job ends now; a running one is asked to stop (its worker ends it)."""
    for _ in range(3):  # the job may move between our read and our write; re-read and retry
        job = get(session, job_id)
        if job.status.is_final:
            return job
        if job.status == JobStatus.QUEUED:
            if repository.transition(
                session,
                job,
                JobStatus.CANCELLED,
                detail="cancelled while queued",
                finished_at=utcnow(),
                cancel_requested=True,
            ):
                session.commit()
                return get(session, job_id)
        elif repository.request_cancel(session, job):
            session.commit()
            return get(session, job_id)
        session.rollback()
    return get(session, job_id)


def _request_hash(request: JobCreate) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()


def _same_request_or_conflict(job: Job, request_hash: str) -> Job:
    if job.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was used with a different request", detail={"job_id": job.id})
    return job
