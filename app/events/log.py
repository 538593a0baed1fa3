"""The job event log (table job_stream): appending status and epoch events, reading them back.

One id sequence orders every event of every job, so a stream resumes with `WHERE id > :last`.
That only loses nothing if ids become visible in id order: on PostgreSQL two transactions may
take ids 10 and 11 and commit 11 first, and a reader that saw 11 would skip 10 for ever. Each
append therefore takes one transaction-scoped advisory lock before its row gets an id, which
serializes the (short) transactions that append: id order is commit order. SQLite serializes
writers anyway. The same transaction sends `NOTIFY` (delivered at commit, carrying no data),
which wakes the streams of every API process (app.events.wakeup); the table stays the truth.
"""

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.models import Job, JobEvent, JobStatus, StreamEvent

# Channel of the data-less NOTIFY that says "the event log grew".
NOTIFY_CHANNEL = "trainyard_events"
# pg_advisory_xact_lock key of the appenders ("trnyd-ev"); the sweep uses another key.
APPEND_LOCK_ID = 0x74726E7964657600
READ_BATCH = 500


class Kind(StrEnum):
    STATUS = "status"
    EPOCH = "epoch"


def _serialize_appends(session: Session) -> None:
    """Hold the appenders' lock until this transaction ends, and notify at its commit."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(APPEND_LOCK_ID)))
        session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))


def append_status(
    session: Session,
    event: JobEvent,
    move: str,
    actor: str,
    resumed_from_epoch: int | None = None,
) -> None:
    """Add the status transition `event` and its stream entry to the session (no commit)."""
    session.add(event)
    _serialize_appends(session)
    at = event.at or utcnow()
    event.at = at
    data: dict[str, Any] = {
        "from_status": event.from_status.value if event.from_status else None,
        "to_status": event.to_status.value,
        "attempt": event.attempt,
        "detail": event.detail,
        "at": at.isoformat(),
    }
    if resumed_from_epoch is not None:
        data["resumed_from_epoch"] = resumed_from_epoch
    session.add(
        StreamEvent(
            job_id=event.job_id,
            kind=Kind.STATUS,
            status=event.to_status,
            attempt=event.attempt,
            move=move,
            actor=actor,
            data=data,
            at=at,
        )
    )


def append_epoch(
    session: Session,
    job_id: str,
    attempt: int,
    epoch: int,
    logs: dict[str, Any],
    duration_s: float | None = None,
    samples: int | None = None,
    at: datetime | None = None,
) -> None:
    """Add a finished epoch's stream entry to the session (no commit). Its data is the metrics
    row of GET /v1/jobs/{id}/metrics, plus the epoch's duration and throughput when known."""
    _serialize_appends(session)
    at = at or utcnow()
    data: dict[str, Any] = {"epoch": epoch, "attempt": attempt, **logs, "finished_at": at.isoformat()}
    if duration_s is not None:
        data["duration_s"] = round(duration_s, 6)
        if samples and duration_s > 0:
            data["samples_per_second"] = round(samples / duration_s, 3)
    session.add(
        StreamEvent(
            job_id=job_id,
            kind=Kind.EPOCH,
            status=JobStatus.RUNNING,
            attempt=attempt,
            duration_s=duration_s,
            samples=samples,
            data=data,
            at=at,
        )
    )


def of_job(session: Session, job_id: str, after: int, limit: int = READ_BATCH) -> Sequence[StreamEvent]:
    """The job's events with id > `after`, oldest first."""
    query = select(StreamEvent).where(StreamEvent.job_id == job_id, StreamEvent.id > after)
    return session.scalars(query.order_by(StreamEvent.id).limit(limit)).all()


def of_all(
    session: Session,
    after: int,
    status: JobStatus | None = None,
    name: str | None = None,
    project: str | None = None,
    limit: int = READ_BATCH,
) -> Sequence[StreamEvent]:
    """Every job's events with id > `after`, oldest first. `status`: events that left their job
    in that status (a status event's to_status; `running` for epochs); `name`: the job's name;
    `project`: jobs of that project only (None: every project)."""
    query = select(StreamEvent).where(StreamEvent.id > after)
    if status is not None:
        query = query.where(StreamEvent.status == status)
    if name is not None:
        query = query.where(StreamEvent.job_id.in_(select(Job.id).where(Job.name == name)))
    if project is not None:
        query = query.where(StreamEvent.job_id.in_(select(Job.id).where(Job.project == project)))
    return session.scalars(query.order_by(StreamEvent.id).limit(limit)).all()


def with_jobs_after(session: Session, after: int, limit: int = READ_BATCH) -> list[tuple[StreamEvent, str, str]]:
    """Every job's events with id > `after`, oldest first, each with its job's name and project
    (what a stream's filters read; app.events.fanout filters them in memory)."""
    query = (
        select(StreamEvent, Job.name, Job.project)
        .join(Job, Job.id == StreamEvent.job_id)
        .where(StreamEvent.id > after)
        .order_by(StreamEvent.id)
        .limit(limit)
    )
    return [(row, name, project) for row, name, project in session.execute(query).all()]


def latest_id(session: Session) -> int:
    return session.scalar(select(func.max(StreamEvent.id))) or 0
