"""Queries on jobs, and the writes that do not change a job's status (app.jobs.states does).

Every write a running attempt makes (lease, epoch rows, checkpoints) is conditional on the job
still being that attempt's: a worker that lost its lease writes nothing more.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.pagination import Page, paginate
from app.db.session import database_now
from app.events import log as event_log
from app.models import DEFAULT_PROJECT, Job, JobEpoch, JobEvent, JobStatus, ModelVersion, StudyTrial


def get(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id, populate_existing=True)


def get_by_idempotency_key(session: Session, key: str, project: str | None = DEFAULT_PROJECT) -> Job | None:
    """The job submitted with this Idempotency-Key in `project` (None: in any project)."""
    query = select(Job).where(Job.idempotency_key == key)
    if project is not None:
        query = query.where(Job.project == project)
    return session.scalars(query.order_by(Job.created_at)).first()


def list_page(
    session: Session,
    limit: int,
    cursor: str | None,
    status: JobStatus | None = None,
    dataset_id: str | None = None,
    name: str | None = None,
    project: str | None = None,
    study_id: str | None = None,
) -> Page[Job]:
    query = select(Job)
    if study_id is not None:  # a study's trials (app.studies)
        query = query.where(Job.id.in_(select(StudyTrial.job_id).where(StudyTrial.study_id == study_id)))
    if project is not None:
        query = query.where(Job.project == project)
    if status is not None:
        query = query.where(Job.status == status)
    if dataset_id is not None:
        query = query.where(Job.dataset_id == dataset_id)
    if name is not None:
        query = query.where(Job.name == name)
    return paginate(session, query, Job.created_at, Job.id, limit, cursor)


def epochs(session: Session, job_id: str) -> Sequence[JobEpoch]:
    """The job's one history: each epoch once (a resume deletes the rows past its checkpoint)."""
    query = select(JobEpoch).where(JobEpoch.job_id == job_id).order_by(JobEpoch.epoch, JobEpoch.attempt)
    return session.scalars(query).all()


def events(session: Session, job_id: str) -> Sequence[JobEvent]:
    return session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()


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


def _owned(job_id: str, attempt: int) -> Any:
    return and_(Job.id == job_id, Job.attempt == attempt, Job.status == JobStatus.RUNNING)


def record_epoch(
    session: Session,
    job_id: str,
    attempt: int,
    epoch: int,
    logs: dict[str, Any],
    duration_s: float | None = None,
    samples: int | None = None,
    finished_at: datetime | None = None,
) -> bool:
    """Store one epoch's logs, show them as the job's progress and append them to the event
    log, if the attempt still owns the job. Commits; returns False (nothing written) for an
    attempt that was fenced off. `duration_s`, `samples`: the epoch's wall time and rows;
    `finished_at`: when the epoch ended (default now; the row may be written later, off the
    training thread)."""
    result = session.execute(
        update(Job)
        .where(_owned(job_id, attempt))
        .values(epoch=epoch, metrics=logs)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    finished_at = finished_at or utcnow()
    session.merge(JobEpoch(job_id=job_id, attempt=attempt, epoch=epoch, logs=logs, created_at=finished_at))
    event_log.append_epoch(session, job_id, attempt, epoch, logs, duration_s, samples, at=finished_at)
    session.commit()
    return True


def record_checkpoint(
    session: Session, job_id: str, attempt: int, epoch: int, batch: int | None, saved_at: datetime
) -> bool:
    """Show the attempt's newest complete checkpoint on the job. Commits."""
    return _update_owned(
        session,
        job_id,
        attempt,
        checkpoint_attempt=attempt,
        checkpoint_epoch=epoch,
        checkpoint_batch=batch,
        checkpoint_saved_at=saved_at,
    )


def record_performance(session: Session, job_id: str, attempt: int, performance: dict[str, Any]) -> bool:
    """Show what the attempt's `fit.performance` chose. Commits."""
    return _update_owned(session, job_id, attempt, performance=performance)


def record_resources(session: Session, job_id: str, attempt: int, resources: dict[str, Any]) -> bool:
    """Show what the attempt trains on (devices, backend, peak memory). Commits."""
    return _update_owned(session, job_id, attempt, resources=resources)


def _update_owned(session: Session, job_id: str, attempt: int, **values: Any) -> bool:
    """Set `values` on the job if the attempt still owns it (fenced). Commits; False if not."""
    result = session.execute(
        update(Job).where(_owned(job_id, attempt)).values(**values).execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


def record_exit(session: Session, job_id: str, worker: str, how: str) -> Job | None:
    """Note how the process running the job's attempt ended (from the worker's main process,
    which saw its child die). Returns the job when that process still owned it. Commits."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status == JobStatus.RUNNING)
        .values(last_exit=how)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return get(session, job_id)


def record_late_exit(session: Session, job_id: str, worker: str, how: str) -> None:
    """How a process died, heard after its attempt was released: noted on the job, and added to
    the error of a job that failed because its processes kept dying. Commits."""
    job = get(session, job_id)
    if job is None or job.worker != worker or job.status == JobStatus.SUCCEEDED:
        return
    job.last_exit = how
    if job.status == JobStatus.FAILED and job.error is not None and how not in job.error:
        job.error = f"{job.error}; {how}"
    session.commit()


def expired_leases(session: Session, now: datetime) -> Sequence[Job]:
    query = select(Job).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    return session.scalars(query).all()


def queued_unsent_or_sent_before(session: Session, sent_before: datetime) -> Sequence[Job]:
    """Queued jobs never sent (the broker was down), or last sent before `sent_before`: oldest first."""
    query = select(Job).where(
        Job.status == JobStatus.QUEUED,
        or_(Job.enqueued_at.is_(None), Job.enqueued_at < sent_before),
    )
    return session.scalars(query.order_by(Job.created_at)).all()


def mark_sent(session: Session, job: Job, previous: datetime | None) -> bool:
    """Record that `job` is about to be sent again, if nobody re-sent it since `previous` was
    read (so two sweeping processes never both send it). Commits."""
    sent = Job.enqueued_at.is_(None) if previous is None else Job.enqueued_at == previous
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.QUEUED, sent)
        .values(enqueued_at=database_now(session), send_count=Job.send_count + 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


def mark_unsent(session: Session, job_id: str) -> None:
    """The publish failed: the sweep's next pass sends the job again. Commits."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(enqueued_at=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def next_version(session: Session, name: str) -> int:
    latest = session.scalar(
        select(ModelVersion.version).where(ModelVersion.name == name).order_by(ModelVersion.version.desc()).limit(1)
    )
    return (latest or 0) + 1


def request_cancel(session: Session, job: Job) -> bool:
    """Flag a running job for cancellation; its worker sees it on the next heartbeat."""
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.RUNNING)
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]
