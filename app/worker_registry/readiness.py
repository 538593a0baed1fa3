"""/readyz's `workers` check: does a live worker consume every queue that has jobs waiting?"""

from datetime import timedelta

from sqlalchemy.orm import Session

from app.config import Settings
from app.db.session import database_now
from app.worker_registry import repository


def stale_after(settings: Settings) -> timedelta:
    """A worker not seen for this long is taken for dead (it reports every `sweep_interval_s`)."""
    return timedelta(seconds=3 * settings.sweep_interval_s)


def unconsumed_queues(session: Session, settings: Settings) -> str | None:
    """None when a live worker (per the `workers` table) consumes every queue with queued jobs,
    else a sentence naming each queue that has none."""
    now = database_now(session)
    missing = [
        _waiting(queue, count)
        for queue, count in repository.queued_jobs_by_queue(session).items()
        if repository.live_consumers(session, queue, now, stale_after(settings)) == 0
    ]
    return "; ".join(missing) or None


def embedded_worker_problem(session: Session, worker_problem: str | None) -> str | None:
    """In embedded mode `serve`'s own worker consumes every queue, so the check is whether it
    does (`worker_problem`, from its supervisor: None when it consumes), and what waits on it."""
    if worker_problem is None:
        return None
    waiting = "; ".join(_waiting(queue, count) for queue, count in repository.queued_jobs_by_queue(session).items())
    return f"{waiting}, because {worker_problem}" if waiting else worker_problem


def _waiting(queue: str, count: int) -> str:
    return f"no live worker consumes queue '{queue}' ({count} {'job' if count == 1 else 'jobs'} queued)"
