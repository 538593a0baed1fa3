"""Thin Celery tasks: the payload is a job id; the logic lives in app.jobs.runner."""

from celery import Task

from app.config import get_settings
from app.jobs.runner import run_job
from app.queue import TRAIN_TASK
from workers.celery_app import celery_app


class JobTask(Task):  # type: ignore[misc]
    # The main process drops undeliverable duplicates and records how a child died.
    Request = "workers.request:JobRequest"


@celery_app.task(name=TRAIN_TASK, base=JobTask, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def train_job(job_id: str) -> str | None:
    """Run the job if this delivery can claim it; the outcome is recorded on the job row."""
    status = run_job(get_settings(), job_id)
    return status.value if status else None
