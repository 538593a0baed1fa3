"""The `workers` table: each worker main process reports itself every sweep interval; /readyz
and the recovery sweep read it. Also the queues that have jobs waiting."""

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db.session import database_now
from app.models import Job, JobStatus, Worker
from app.worker_registry.devices import DevicePlan


def live_consumers(session: Session, queue: str, now: datetime, stale_after: timedelta) -> int:
    """How many live workers consume `queue`: seen within `stale_after` of `now` (the database
    clock) and not stopping."""
    rows = session.scalars(
        select(Worker.queues).where(Worker.last_seen_at >= now - stale_after, Worker.stopping.is_(False))
    )
    # `queues` is comma-separated; matched whole, so "training" never counts "training.gpu".
    return sum(1 for queues in rows if queue in queues.split(","))


def devices_per_job(session: Session, queue: str, now: datetime, stale_after: timedelta) -> int | None:
    """The most devices one job can get from a live worker of `queue`; None when no live worker
    of it knows its devices (then a job's request cannot be checked at submit)."""
    rows = session.execute(
        select(Worker.queues, Worker.devices_per_job).where(
            Worker.last_seen_at >= now - stale_after, Worker.stopping.is_(False), Worker.devices_per_job.is_not(None)
        )
    )
    known = [per_job for queues, per_job in rows if queue in queues.split(",") and per_job is not None]
    return max(known) if known else None


def queued_jobs_by_queue(session: Session) -> dict[str, int]:
    """How many jobs are queued on each queue that has any."""
    rows = session.execute(
        select(Job.queue, func.count()).where(Job.status == JobStatus.QUEUED).group_by(Job.queue).order_by(Job.queue)
    )
    return {queue: count for queue, count in rows}


def report(
    session: Session,
    name: str,
    hostname: str,
    pid: int,
    queues: list[str],
    active_jobs: int,
    stopping: bool,
    devices: DevicePlan | None = None,
) -> None:
    """Insert or refresh this worker's row (with the devices it advertises). Commits."""
    now = database_now(session)
    row = session.get(Worker, name)
    if row is None:
        row = Worker(name=name, hostname=hostname, pid=pid, started_at=now)
        session.add(row)
    row.queues = ",".join(queues)
    row.active_jobs = active_jobs
    row.stopping = stopping
    row.last_seen_at = now
    if devices is not None:
        row.backend = devices.backend
        if devices.devices is not None:  # else a child reports what its backend sees (note_backend_devices)
            row.devices = devices.devices
            row.devices_per_job = devices.per_job
    session.commit()


def note_backend_devices(session: Session, name: str, devices: list[str]) -> bool:
    """A child's report of the devices its backend sees, for a worker that could not list them
    before forking; each child sees them all, so one job may get all of them. Commits."""
    row = session.get(Worker, name)
    if row is None:
        return False
    row.devices = devices
    row.devices_per_job = len(devices)
    session.commit()
    return True


def remove(session: Session, name: str) -> None:
    session.execute(delete(Worker).where(Worker.name == name))
    session.commit()


def idle_queues(session: Session, seen_after: datetime) -> set[str]:
    """Queues that a live worker with no job running consumes: a job waiting there for long has
    lost its message (app.jobs.recovery)."""
    query = select(Worker.queues).where(
        Worker.last_seen_at >= seen_after, Worker.active_jobs == 0, Worker.stopping.is_(False)
    )
    return {queue for queues in session.scalars(query) for queue in queues.split(",") if queue}
