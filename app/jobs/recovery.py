"""The sweep that makes SQL, not the broker, the source of truth for a job.

It finds (a) running jobs whose worker stopped renewing the lease (killed, OOM, machine
lost): they go back to the queue, or fail after `max_attempts`; and (b) queued jobs whose
message may be lost (broker down at submit, Redis restarted, an embedded queue file consumed
by a process that died): their id is sent again. A duplicate message is harmless because a
worker claims a job with a conditional UPDATE.
"""

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import Settings
from app.db.base import utcnow
from app.db.session import database_now
from app.jobs import repository
from app.jobs.service import send
from app.models import Job, JobStatus

log = logging.getLogger(__name__)


def sweep(session: Session, settings: Settings, resend_sent_before: datetime | None = None) -> int:
    """Run one recovery pass; returns how many job ids were (re)sent to the broker."""
    now = database_now(session)
    for job in repository.stalled_running(session, now):
        _release_stalled(session, settings, job)
    sent = 0
    cutoff = resend_sent_before or utcnow() - timedelta(seconds=settings.requeue_after_s)
    for job in repository.unsent_queued(session, cutoff):
        if resend_sent_before is None and not _resend_due(job, settings):
            continue
        if send(session, settings, job):
            sent += 1
            log.info("job %s re-sent to %s (its message may have been lost)", job.id, job.queue)
    return sent


def _resend_due(job: Job, settings: Settings) -> bool:
    """Whether a queued job's message is old enough to send again. The wait doubles with each
    send (up to 64x), so a job queued behind days of work collects a few duplicates, not
    hundreds: each costs a worker a fresh child process to skip."""
    if job.enqueued_at is None:
        return True
    wait = settings.requeue_after_s * 2 ** min(max(job.send_count - 1, 0), 6)
    return job.enqueued_at < utcnow() - timedelta(seconds=wait)


def _release_stalled(session: Session, settings: Settings, job: Job) -> None:
    reason = f"worker {job.worker} stopped renewing its lease (attempt {job.attempt})"
    if job.cancel_requested:
        moved = repository.transition(
            session,
            job,
            JobStatus.CANCELLED,
            detail=reason,
            finished_at=utcnow(),
            lease_expires_at=None,
        )
    elif job.attempt >= settings.max_attempts:
        error = f"{reason}; gave up after {job.attempt} attempts"
        moved = repository.transition(
            session,
            job,
            JobStatus.FAILED,
            detail=error,
            error=error,
            finished_at=utcnow(),
            lease_expires_at=None,
        )
    else:
        moved = repository.transition(
            session,
            job,
            JobStatus.QUEUED,
            detail=f"{reason}; queued again",
            unless_cancel_requested=True,
            enqueued_at=None,
            send_count=0,
            lease_expires_at=None,
        )
    if moved:
        session.commit()
        log.warning("job %s: %s", job.id, reason)
    else:
        session.rollback()
