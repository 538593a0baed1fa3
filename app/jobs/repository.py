"""Queries and atomic status transitions on jobs. Every transition writes a JobEvent."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.pagination import Page, paginate
from app.db.session import database_now
from app.models import Job, JobEpoch, JobEvent, JobStatus, ModelVersion


def get(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id, populate_existing=True)


def get_by_idempotency_key(session: Session, key: str) -> Job | None:
    return session.scalars(select(Job).where(Job.idempotency_key == key)).first()


def list_page(
    session: Session,
    limit: int,
    cursor: str | None,
    status: JobStatus | None = None,
    dataset_id: str | None = None,
    name: str | None = None,
) -> Page[Job]:
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status)
    if dataset_id is not None:
        query = query.where(Job.dataset_id == dataset_id)
    if name is not None:
        query = query.where(Job.name == name)
    return paginate(session, query, Job.created_at, Job.id, limit, cursor)


def epochs(session: Session, job_id: str, attempt: int) -> Sequence[JobEpoch]:
    query = select(JobEpoch).where(JobEpoch.job_id == job_id, JobEpoch.attempt == attempt).order_by(JobEpoch.epoch)
    return session.scalars(query).all()


def events(session: Session, job_id: str) -> Sequence[JobEvent]:
    return session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()


def transition(
    session: Session,
    job: Job,
    to_status: JobStatus,
    detail: str | None = None,
    unless_cancel_requested: bool = False,
    **values: Any,
) -> bool:
    """Move `job` to `to_status` if nobody changed it since it was read (same status, attempt).

    Does not commit; returns False (and changes nothing) when the row moved on meanwhile, or
    when `unless_cancel_requested` and a cancel has been asked for.
    """
    attempt = values.get("attempt", job.attempt)
    query = update(Job).where(Job.id == job.id, Job.status == job.status, Job.attempt == job.attempt)
    if unless_cancel_requested:
        query = query.where(Job.cancel_requested.is_(False))
    result = session.execute(query.values(status=to_status, **values).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.add(
        JobEvent(
            job_id=job.id,
            from_status=job.status,
            to_status=to_status,
            attempt=attempt,
            detail=detail,
        )
    )
    return True


def claim(session: Session, job_id: str, worker: str, lease: timedelta, max_attempts: int) -> Job | None:
    """Take the job for this worker: queued, or running with an expired lease. Commits.

    Returns None when another delivery or worker owns it, or it is final: a duplicate
    message therefore does nothing.
    """
    job = get(session, job_id)
    now = database_now(session)
    if job is not None and job.status == JobStatus.QUEUED and job.cancel_requested:
        # A cancel that raced a requeue: end it here rather than leave it queued forever.
        if transition(session, job, JobStatus.CANCELLED, detail="cancelled before it ran", finished_at=now):
            session.commit()
        return None
    if job is None or job.cancel_requested or job.attempt >= max_attempts:
        return None
    lease_expired = job.status == JobStatus.RUNNING and job.lease_expires_at is not None and job.lease_expires_at < now
    if job.status != JobStatus.QUEUED and not lease_expired:
        return None
    attempt = job.attempt + 1
    claimed = transition(
        session,
        job,
        JobStatus.RUNNING,
        detail=f"claimed by {worker}" + (" after its lease expired" if lease_expired else ""),
        attempt=attempt,
        worker=worker,
        started_at=now,
        lease_expires_at=now + lease,
        epoch=0,
        metrics={},
        error=None,
    )
    if not claimed:
        session.rollback()
        return None
    session.commit()
    return get(session, job_id)


class Heartbeat(Enum):
    KEEP_GOING = "keep_going"
    CANCEL = "cancel"
    LOST = "lost"


def renew_lease(session: Session, job_id: str, attempt: int, lease: timedelta) -> Heartbeat:
    """Extend the running attempt's lease and say whether it should go on. Commits."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt == attempt, Job.status == JobStatus.RUNNING)
        .values(lease_expires_at=database_now(session) + lease)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return Heartbeat.LOST
    cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    return Heartbeat.CANCEL if cancel else Heartbeat.KEEP_GOING


def record_epoch(session: Session, job_id: str, attempt: int, epoch: int, logs: dict[str, Any]) -> None:
    """Store one epoch's logs and show them as the job's progress. Commits."""
    session.add(JobEpoch(job_id=job_id, attempt=attempt, epoch=epoch, logs=logs))
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt == attempt, Job.status == JobStatus.RUNNING)
        .values(epoch=epoch, metrics=logs)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def next_version(session: Session, name: str) -> int:
    latest = session.scalar(
        select(ModelVersion.version).where(ModelVersion.name == name).order_by(ModelVersion.version.desc()).limit(1)
    )
    return (latest or 0) + 1


def succeed_and_register(
    session: Session,
    job: Job,
    artifact_path: str,
    signature: dict[str, Any],
    metrics: dict[str, Any],
    retries: int = 5,
    serving: dict[str, Any] | None = None,
) -> ModelVersion | None:
    """Mark the running attempt succeeded and register its model, in one transaction.

    Returns None (nothing written) when the attempt no longer owns the job or a cancel
    was asked for meanwhile. `serving` holds the ModelVersion's `serving_*` columns.
    """
    for _ in range(retries):
        version = next_version(session, job.register_as)
        now = utcnow()
        model_version = ModelVersion(
            name=job.register_as,
            version=version,
            job_id=job.id,
            artifact_path=artifact_path,
            signature=signature,
            metrics=metrics,
            **(serving or {}),
        )
        if not transition(
            session,
            job,
            JobStatus.SUCCEEDED,
            unless_cancel_requested=True,
            finished_at=now,
            lease_expires_at=None,
            model_name=job.register_as,
            model_version=version,
            metrics=metrics,
        ):
            session.rollback()
            return None
        session.add(model_version)
        try:
            session.commit()
            return model_version
        except IntegrityError:  # another job registered the same version first: take the next
            session.rollback()
    raise RuntimeError(f"could not register a version of {job.register_as} after {retries} tries")


def stalled_running(session: Session, now: datetime) -> Sequence[Job]:
    query = select(Job).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    return session.scalars(query).all()


def unsent_queued(session: Session, sent_before: datetime) -> Sequence[Job]:
    query = select(Job).where(
        Job.status == JobStatus.QUEUED,
        or_(Job.enqueued_at.is_(None), and_(Job.enqueued_at < sent_before)),
    )
    return session.scalars(query.order_by(Job.created_at)).all()


def mark_enqueued(session: Session, job_id: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(enqueued_at=utcnow(), send_count=Job.send_count + 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def request_cancel(session: Session, job: Job) -> bool:
    """Flag a running job for cancellation; its worker sees it on the next heartbeat."""
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.RUNNING)
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]
