"""The worker's Celery app: shared config from app.queue plus one-job-per-child process rules."""

import logging

from celery import Celery
from celery.signals import setup_logging, worker_process_init
from sqlalchemy import text

from app.config import get_settings
from app.db.session import dispose_engines, session_scope
from app.logs import configure_logging
from app.queue import celery_config

log = logging.getLogger(__name__)


def create_celery() -> Celery:
    settings = get_settings()
    app = Celery("trainyard-worker", include=["workers.tasks"])
    app.conf.update(celery_config(settings))
    app.conf.update(
        # A fresh child per job: TensorFlow never returns GPU memory to a process.
        worker_max_tasks_per_child=1,
        # The child imports Keras before it reports ready (see warm_up below); that takes
        # seconds, beyond Celery's 4 s default.
        worker_proc_alive_timeout=120.0,
        # A job past max_job_runtime_s gets SoftTimeLimitExceeded inside fit() and ends failed;
        # the hard limit is the backstop for a child stuck in native code.
        task_soft_time_limit=settings.max_job_runtime_s,
        task_time_limit=settings.max_job_runtime_s + 120,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


@setup_logging.connect
def _configure_logging(**_: object) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


@worker_process_init.connect
def warm_up(**_: object) -> None:
    """Get each new child ready before a job arrives, so a job on an idle worker starts at once:
    Keras and the training modules imported, a database connection of its own open.

    Never in the parent: TensorFlow imported before fork makes the child's TF calls hang.
    """
    import keras

    import app.ml.training  # noqa: F401  (the spec catalog and builder: pydantic schemas to build)

    # Forked from the parent: never reuse its pooled database connections; open a fresh one now.
    dispose_engines(after_fork=True)
    with session_scope(get_settings().sqlalchemy_url) as session:
        session.execute(text("SELECT 1"))
    log.info("child ready: Keras %s on %s", keras.__version__, keras.backend.backend())


celery_app = create_celery()
