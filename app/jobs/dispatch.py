"""Publishing a job id to the broker, after the send is recorded in SQL.

Every send is first written on the job row (`enqueued_at`, `send_count`) and committed; only then
is the message published. The recovery sweep therefore never races a send in flight, and a
publish that fails clears `enqueued_at` so the sweep's next pass sends the job again.
Imports no Keras: the worker's main process (which must not import TensorFlow before it forks)
publishes too.
"""

import logging

from sqlalchemy.orm import Session

from app import queue
from app.config import Settings
from app.jobs import repository
from app.models import Job

log = logging.getLogger(__name__)


def publish(session: Session, settings: Settings, job: Job) -> bool:
    """Send a job whose send is already recorded. On a broker failure the job stays queued
    with `enqueued_at` unset, and the sweep sends it later: the job is never lost."""
    try:
        queue.enqueue(settings, job.id, job.queue)
    except Exception:
        log.exception("could not reach the broker for job %s; the sweep will send it again", job.id)
        repository.mark_unsent(session, job.id)
        return False
    return True


def resend(session: Session, settings: Settings, job: Job) -> bool:
    """Record a new send of a queued job (unless another process just did) and publish it."""
    if not repository.mark_sent(session, job, job.enqueued_at):
        return False
    return publish(session, settings, job)
