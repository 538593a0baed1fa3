"""A job's moves made the way a worker or the sweep makes them (app.jobs.states and
repository), for tests that need a job's history without training a model."""

from datetime import timedelta

from app.config import Settings
from app.db.session import session_scope
from app.jobs import repository, states
from app.jobs.states import Actor, Move, ResumePoint

LEASE = timedelta(seconds=60)


def claim(settings: Settings, job_id: str, resume: ResumePoint | None = None) -> int:
    with session_scope(settings.sqlalchemy_url) as session:
        job = states.claim(session, job_id, "test-worker", LEASE, max_attempts=3, resume=resume)
        assert job is not None
        return job.attempt


def epoch(settings: Settings, job_id: str, attempt: int, number: int, logs: dict[str, float] | None = None) -> None:
    """Record epoch `number` of `attempt`: 100 rows in 0.5 s, `logs` (default: a falling loss)."""
    with session_scope(settings.sqlalchemy_url) as session:
        logs = logs if logs is not None else {"loss": 1.0 / number}
        assert repository.record_epoch(session, job_id, attempt, number, logs, 0.5, 100)


def release(settings: Settings, job_id: str, actor: Actor = Actor.WORKER) -> None:
    """The attempt is lost (its process died; with Actor.SWEEP: its lease expired): queued again."""
    with session_scope(settings.sqlalchemy_url) as session:
        job = repository.get(session, job_id)
        assert job is not None
        move = states.release_lost(session, job, "worker lost", actor, 3, 3600)
        assert move is Move.REQUEUE


def fail(settings: Settings, job_id: str) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        job = repository.get(session, job_id)
        assert job is not None
        assert states.finish(session, job, Move.FAIL, error="boom")
