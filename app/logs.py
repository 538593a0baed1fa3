"""Logging setup: every line carries the job id it concerns, as text or one JSON object."""

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

current_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

# Celery's own lines ("Task trainyard.train_job[job-<id>-<n>] received") name the task id,
# which app.queue.enqueue builds from the job id.
_TASK_ID = re.compile(r"job-([0-9a-f]{32})-")


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    token = current_job_id.set(job_id)
    try:
        yield
    finally:
        current_job_id.reset(token)


class JobIdFilter(logging.Filter):
    """Adds `record.job_id` from the context, or from a Celery task id in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = current_job_id.get()
        if job_id is None:
            match = _TASK_ID.search(_safe_message(record))
            job_id = match.group(1) if match else None
        record.job_id = job_id or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "job_id": getattr(record, "job_id", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s [%(processName)s] %(name)s job=%(job_id)s: %(message)s"


def configure_logging(level: str = "INFO", as_json: bool = False, extra: logging.Handler | None = None) -> None:
    """Route all logging (ours, Celery's, uvicorn's) through one handler with the job id, and
    through `extra` too when given (a worker's per-job log files)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(JobIdFilter())
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler] if extra is None else [handler, extra]
    root.setLevel(level.upper())
    # Python warnings (Celery's, Keras's) become records too, so JSON mode writes them as JSON.
    logging.captureWarnings(True)
    for noisy in ("absl", "tensorflow", "h5py", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _safe_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        return str(record.msg)
