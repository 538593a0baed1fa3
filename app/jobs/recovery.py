"""The sweep that makes SQL, not the broker or a process, the source of truth for a job.

It runs in every `serve` and every worker main process, one pass at a time across all of them
(a PostgreSQL advisory lock; a file lock beside the SQLite database), so a cluster whose API is
down still recovers its jobs. A pass finds:

(a) running jobs whose worker stopped renewing the lease (killed, OOM, machine lost, cut off
    from the database): queued again (they resume from their checkpoint), or ended cancelled,
    timed out or failed (app.jobs.states.release_lost);
(b) queued jobs whose message may be lost, and sends their id again:
    - never sent (the broker was down at submit, or a publish failed);
    - sent over `lost_message_after_s` ago while a live worker of its queue sits idle: with a
      worker free to take it, a message that old is not waiting, it is gone (Redis restarted
      empty, an embedded queue file taken by a process that died);
    - otherwise, every worker busy: after `requeue_after_s`, doubling per send (up to 64x), so a
      job queued behind days of work collects a few duplicates, not hundreds.
A duplicate message is harmless and cheap: the worker's main process drops it before it spends
a child process (app.jobs.runner.claimable_delivery).
"""

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.session import database_now, get_engine
from app.jobs import dispatch, repository, states
from app.models import Job, JobStatus
from app.worker_registry import repository as worker_registry

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every trainyard process.
_PG_SWEEP_LOCK_ID = 7_304_118_523


def sweep(session: Session, settings: Settings, resend_sent_before: datetime | None = None) -> int | None:
    """Run one recovery pass; returns how many job ids were (re)sent, or None when another
    process is doing a pass right now.

    `resend_sent_before`: also re-send every queued job sent before then (the embedded broker's
    worker lost what it had taken when the process that held it stopped).
    """
    with one_pass_at_a_time(settings) as ours:
        if not ours:
            return None
        return _sweep(session, settings, resend_sent_before)


def _sweep(session: Session, settings: Settings, resend_sent_before: datetime | None) -> int:
    now = database_now(session)
    lease = timedelta(seconds=settings.job_lease_s)
    sent = 0
    for job in repository.expired_leases(session, now):
        reason = f"worker {job.worker} stopped renewing its lease (attempt {job.attempt})"
        move = states.release_lost(
            session, job, reason, states.Actor.SWEEP, settings.max_attempts, settings.max_job_runtime_s, lease=lease
        )
        if move is not None:
            log.warning("job %s: %s → %s", job.id, reason, move.value)
        if move is states.Move.REQUEUE:
            sent += dispatch.publish(session, settings, _reread(session, job))
    idle = worker_registry.idle_queues(session, now - timedelta(seconds=3 * settings.sweep_interval_s))
    cutoff = now - timedelta(seconds=min(settings.lost_message_after_s, settings.requeue_after_s))
    if resend_sent_before is not None:
        cutoff = max(cutoff, resend_sent_before)
    for job in repository.queued_unsent_or_sent_before(session, cutoff):
        why = _why_resend(job, settings, now, idle, resend_sent_before)
        if why is not None and dispatch.resend(session, settings, job):
            sent += 1
            log.info("job %s re-sent to %s: %s", job.id, job.queue, why)
    return sent


def _why_resend(
    job: Job, settings: Settings, now: datetime, idle: set[str], resend_sent_before: datetime | None
) -> str | None:
    if job.enqueued_at is None:
        return "never sent (the broker was unreachable)"
    if resend_sent_before is not None and job.enqueued_at < resend_sent_before:
        return "sent before this process started (the embedded queue lost what its worker held)"
    lost_after = timedelta(seconds=settings.lost_message_after_s)
    if job.queue in idle and job.enqueued_at < now - lost_after:
        return f"a worker of {job.queue} is idle, so its message of {job.enqueued_at:%H:%M:%S} was lost"
    wait = settings.requeue_after_s * 2 ** min(max(job.send_count - 1, 0), 6)
    if job.enqueued_at < now - timedelta(seconds=wait):
        return f"not taken within {wait:.0f} s"
    return None


def _reread(session: Session, job: Job) -> Job:
    return repository.get(session, job.id) or job


@contextmanager
def one_pass_at_a_time(settings: Settings, pg_lock_id: int = _PG_SWEEP_LOCK_ID, name: str = "sweep") -> Iterator[bool]:
    """Yield whether this process holds the lock `name` (the sweep's by default; the study
    driver's is another) across every trainyard process; never waits for it."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.ensure_dirs()
        with (settings.home_dir / f".{name}.lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    # A connection of its own: the session-level lock must be released on the connection that
    # took it, whatever the sweep's session does with its own connections meanwhile.
    with get_engine(url).connect() as connection:
        ours = bool(connection.scalar(select(func.pg_try_advisory_lock(pg_lock_id))))
        connection.commit()
        try:
            yield ours
        finally:
            if ours:
                connection.scalar(select(func.pg_advisory_unlock(pg_lock_id)))
                connection.commit()


def release_dead_process(session: Session, settings: Settings, job_id: str, worker: str, how: str) -> None:
    """The process `worker` (host:pid) running `job_id` died: note how (signal or exit code, and
    the epoch it reached) and release its attempt at once: queued again to resume from its
    checkpoint, or failed after max_attempts with that reason. When the sweep released the
    attempt first (its lease expired before this was heard), how it died is still recorded, and
    added to the error of a job that failed for it."""
    job = repository.get(session, job_id)
    if job is None or job.worker != worker:
        return  # another attempt (on another process) has the job now
    died = f"the training process died: {_plain(how)} (attempt {job.attempt}, after epoch {job.epoch})"
    if job.status != JobStatus.RUNNING:
        repository.record_late_exit(session, job_id, worker, died)
        return  # it was handed back or ended already (e.g. its watch killed it), or the sweep won
    recorded = repository.record_exit(session, job_id, worker, died)
    if recorded is None:
        return
    move = states.release_lost(
        session,
        recorded,
        f"worker {worker} lost",
        states.Actor.WORKER,
        settings.max_attempts,
        settings.max_job_runtime_s,
        last_exit=died,
    )
    log.warning("job %s: %s → %s", job_id, died, move.value if move else "already moved on")
    if move is states.Move.REQUEUE:
        dispatch.publish(session, settings, _reread(session, recorded))


def _plain(how: str) -> str:
    """billiard's "Worker exited prematurely: signal 9 (SIGKILL) Job: 0." → "signal 9 (SIGKILL)"."""
    return how.removeprefix("Worker exited prematurely: ").split(" Job:")[0].strip() or how
