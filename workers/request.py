"""The worker main process's side of a job message: drop what cannot run, note how a child died.

A duplicate delivery (a re-send after a broker restart, the sweep's resend, a requeue after a
child died) is answered here, in the main process, with one indexed read: it never costs a
fresh child process and its Keras import (each child runs one job, then is replaced).
"""

import logging
import socket
from typing import Any

from celery.exceptions import WorkerLostError
from celery.worker.request import Request
from celery.worker.state import task_ready

from app.config import get_settings
from app.db.session import database_now, session_scope
from app.jobs import recovery, repository, states

log = logging.getLogger(__name__)


class JobRequest(Request):
    """A `train_job` message as the worker's main process handles it."""

    # Celery wraps this class in one whose execute_using_pool() starts with `if self.revoked():
    # raise TaskRevokedError` (which the worker answers by freeing the pool slot, nothing else):
    # that check is where a delivery that cannot run is dropped, before any child sees it.
    _delivery_checked = False

    def revoked(self) -> bool:
        if super().revoked():
            return True
        if self._delivery_checked:
            return False
        self._delivery_checked = True
        job_id = self._job_id()
        if job_id is None or _may_run(job_id):
            return False
        log.info("job %s: delivery skipped in the main process (duplicate, final or cancelled)", job_id)
        task_ready(self)
        self.acknowledge()
        self._already_revoked = True  # every later revoked() answers True without a query
        return True

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> Any:
        exc = getattr(exc_info, "exception", None)
        exc = getattr(exc, "exc", exc)  # ExceptionWithTraceback
        job_id = self._job_id()
        if isinstance(exc, WorkerLostError | SystemExit) and job_id is not None and self.worker_pid:
            _release_after_death(job_id, f"{socket.gethostname()}:{self.worker_pid}", str(exc))
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _job_id(self) -> str | None:
        args = self.args or []
        return str(args[0]) if args else None


def _may_run(job_id: str) -> bool:
    settings = get_settings()
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            job = repository.get(session, job_id)
            return job is not None and states.claimable(job, database_now(session), settings.max_attempts)
    except Exception:  # the database is unreachable from here: let the child decide (it claims)
        log.warning("job %s: could not check the delivery; handing it to a child", job_id, exc_info=True)
        return True


def _release_after_death(job_id: str, worker: str, how: str) -> None:
    """The child running the job died (killed, OOM, segfault, os._exit): say how on the job and
    release the attempt now instead of waiting for its lease to expire."""
    settings = get_settings()
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            recovery.release_dead_process(session, settings, job_id, worker, how)
    except Exception:
        log.exception("job %s: could not record how its process died; its lease will expire", job_id)
