"""Celery client side: task and queue names, the shared configuration, and `enqueue(job_id)`.

The API sends tasks by name and never imports `workers`; the worker app reuses `celery_config`.
"""

import uuid
from functools import lru_cache
from typing import Any

from celery import Celery
from kombu import Queue

import app.embedded.transport  # noqa: F401  (registers the local broker's trainyard-fs:// URL scheme)
from app.config import Settings

TRAIN_TASK = "trainyard.train_job"
TRAINING_QUEUE = "training"
GPU_TRAINING_QUEUE = "training.gpu"
QUEUES = (TRAINING_QUEUE, GPU_TRAINING_QUEUE)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Configuration for hours-long jobs whose truth lives in SQL (DESIGN.md, decision 2)."""
    config: dict[str, Any] = {
        "broker_url": settings.celery_broker_url,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": TRAINING_QUEUE,
        "task_routes": {TRAIN_TASK: {"queue": TRAINING_QUEUE}},
        # A job may run for days; Redis must not hand its unacknowledged message to another
        # worker before: the visibility timeout stays above the longest allowed runtime plus the
        # shutdown grace, in every place Celery reads it.
        "broker_transport_options": {"visibility_timeout": visibility_timeout(settings)},
        "result_backend_transport_options": {"visibility_timeout": visibility_timeout(settings)},
    }
    if settings.broker_is_local:
        folder = str(settings.broker_dir)
        config["broker_transport_options"] = {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": str(settings.broker_dir / "control"),
            "store_processed": False,
            "polling_interval": 0.05,  # pickup within ≈ 50 ms (bench/embedded_broker.py); an idle poll is a listdir
        }
    return config


def visibility_timeout(settings: Settings) -> int:
    return int(settings.max_job_runtime_s + settings.shutdown_grace_s + 3600)


@lru_cache(maxsize=4)
def _client(settings: Settings) -> Celery:
    app = Celery("trainyard-client")
    app.conf.update(celery_config(settings))
    return app


def client(settings: Settings) -> Celery:
    if settings.broker_is_local:
        settings.ensure_dirs()
        (settings.broker_dir / "control").mkdir(exist_ok=True)
    return _client(settings)


def enqueue(settings: Settings, job_id: str, queue: str = TRAINING_QUEUE) -> None:
    """Send the job id (and nothing else) to `queue`. Blocking network I/O."""
    client(settings).send_task(
        TRAIN_TASK,
        args=[job_id],
        queue=queue,
        # The job id in the task id lets every worker log line carry it (app/logs.py).
        task_id=f"job-{job_id}-{uuid.uuid4().hex[:8]}",
    )


def ping_broker(settings: Settings, timeout_s: float = 2.0) -> None:
    """Raise when the broker cannot be reached within `timeout_s`."""
    with client(settings).connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=timeout_s)
