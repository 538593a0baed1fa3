"""A job's log: the lines its worker processes logged about it, for GET /v1/jobs/{id}/logs.

Each worker process (the main one and the child that trains) appends every record that names a
job (app.logs adds the id) to `jobs/<id>/logs/worker.log` in the artifact store, the volume the
API already shares with the workers to serve their models. Every attempt appends to the same
file, whichever machine ran it, so the file is the job's whole story in time order, and a failed
job can be diagnosed without a shell on the worker.
"""

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi.concurrency import run_in_threadpool

from app.config import Settings
from app.db.session import session_scope
from app.errors import NotFound
from app.jobs import repository
from app.logs import TEXT_FORMAT, JobIdFilter

SETTLE_S = 1.0
_JOB_ID = re.compile(r"[0-9a-f]{32}")  # app.models.dataset.new_id: nothing else becomes a path


def log_path(artifacts_dir: Path, job_id: str) -> Path:
    return artifacts_dir / "jobs" / job_id / "logs" / "worker.log"


class JobLogHandler(logging.Handler):
    """Appends each record that concerns a job to that job's log file.

    Opened per record: a job logs a few lines per epoch, and an attempt on another machine
    appends to the same file (O_APPEND keeps whole lines whole on a local or NFS volume)."""

    def __init__(self, artifacts_dir: Path) -> None:
        super().__init__()
        self._artifacts_dir = artifacts_dir
        self.addFilter(JobIdFilter())
        self.setFormatter(logging.Formatter(TEXT_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        job_id = getattr(record, "job_id", "-")
        if not _JOB_ID.fullmatch(job_id):
            return
        try:
            line = self.format(record)
            path = log_path(self._artifacts_dir, job_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")
        except Exception:
            self.handleError(record)  # a full disk must not end the training; stderr says it


def read_from(artifacts_dir: Path, job_id: str, offset: int) -> bytes:
    """The job's log from byte `offset` on (empty before its first line)."""
    try:
        with log_path(artifacts_dir, job_id).open("rb") as file:
            file.seek(offset)
            return file.read()
    except FileNotFoundError:
        return b""


def require_job(settings: Settings, job_id: str, project: str | None = None) -> None:
    """NotFound unless the job exists (in `project`; None: any)."""
    with session_scope(settings.sqlalchemy_url) as session:
        job = repository.get(session, job_id)
        if job is None or (project is not None and job.project != project):
            raise NotFound(f"job {job_id} does not exist")


def _is_final(settings: Settings, job_id: str) -> bool:
    with session_scope(settings.sqlalchemy_url) as session:
        job = repository.get(session, job_id)
        return job is None or job.status.is_final


async def follow(settings: Settings, job_id: str) -> AsyncIterator[bytes]:
    """The job's log, then its new lines as they are written, until the job is final and its
    log has been quiet for `SETTLE_S` (the worker logs its last lines just after it commits the
    final status)."""
    offset = 0
    quiet_since: float | None = None
    while True:
        final = await run_in_threadpool(_is_final, settings, job_id)
        chunk = await run_in_threadpool(read_from, settings.artifacts_dir, job_id, offset)
        if chunk:
            offset += len(chunk)
            quiet_since = None
            yield chunk
        elif final:
            now = time.monotonic()
            quiet_since = quiet_since or now
            if now - quiet_since >= SETTLE_S:
                return
        await asyncio.sleep(settings.events_poll_s)
