"""The worker's Celery app: shared config from app.queue plus one-job-per-child process rules."""

import logging
import os
import socket
import threading
import time
from typing import Any

from billiard.process import current_process
from celery import Celery
from celery.signals import (
    setup_logging,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from sqlalchemy import text

from app.config import get_settings
from app.db.session import dispose_engines, session_scope
from app.jobs.job_logs import JobLogHandler
from app.logs import configure_logging
from app.queue import celery_config
from app.studies.driver import DriverThread
from app.worker_registry import repository as worker_registry
from app.worker_registry.devices import DevicePlan, plan_devices
from workers.maintenance import Maintenance

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
        # A job's own max_runtime_s is enforced by its watch (it ends `timed_out`, checkpoint
        # kept); Celery's hard limit is only the backstop for a child stuck in native code.
        task_time_limit=settings.max_job_runtime_s + settings.shutdown_grace_s + 600,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


@setup_logging.connect
def _configure_logging(**_: object) -> None:
    settings = get_settings()
    # Every line about a job also goes to the job's own log (GET /v1/jobs/{id}/logs).
    configure_logging(settings.log_level, settings.log_json, extra=JobLogHandler(settings.artifacts_dir))


# Set in the main process before the pool forks (worker_init), so every child inherits it.
_devices: DevicePlan | None = None


@worker_init.connect
def share_out_devices(sender: object = None, **_: object) -> None:
    """Before the children start: which devices this worker has and how many each child gets.
    A worker with fewer devices than children refuses to start (DeviceConfigError)."""
    global _devices
    concurrency = int(getattr(sender, "concurrency", None) or celery_app.conf.worker_concurrency or 1)
    _devices = plan_devices(get_settings(), concurrency)
    log.info("devices: %s, %s per job (%s)", _devices.devices or "not known here", _devices.per_job, _devices.backend)


@worker_process_init.connect
def warm_up(sender: object = None, **_: object) -> None:
    """Get each new child ready before a job arrives, so a job on an idle worker starts at once:
    pinned to its device set, Keras and the training modules imported, a database connection of
    its own open.

    Never in the parent: TensorFlow imported before fork makes the child's TF calls hang.
    """
    if _devices is not None:
        # Before the backend starts: CUDA_VISIBLE_DEVICES and the memory-sharing switches are
        # read once, at its first use. A replaced child keeps its index, so its devices.
        os.environ.update(_devices.child_environment(int(getattr(current_process(), "index", 0) or 0)))
    import keras

    import app.ml.training  # noqa: F401  (the spec catalog and builder: pydantic schemas to build)

    # Forked from the parent: never reuse its pooled database connections; open a fresh one now.
    dispose_engines(after_fork=True)
    with session_scope(get_settings().sqlalchemy_url) as session:
        session.execute(text("SELECT 1"))
    if _devices is not None and _devices.devices is None and sender is not None:
        _advertise_backend_devices(str(sender), keras)
    log.info(
        "child ready: Keras %s on %s, devices %s",
        keras.__version__,
        keras.backend.backend(),
        os.environ.get("CUDA_VISIBLE_DEVICES", "as the backend finds them"),
    )


def _advertise_backend_devices(worker: str, keras: Any) -> None:
    """No device list before the fork: advertise what this child's backend sees (every child of
    such a worker sees them all), so a job asking for more is refused at submit. The main process
    may not have written its row yet (it does once the pool is up): a thread retries for a minute."""
    try:
        devices = [str(device).lower() for device in keras.distribution.list_devices()]
    except (NotImplementedError, AttributeError):  # torch: no distribution library
        devices = ["cpu:0"]

    def advertise() -> None:
        for _ in range(120):
            try:
                with session_scope(get_settings().sqlalchemy_url) as session:
                    if worker_registry.note_backend_devices(session, worker, devices):
                        return
            except Exception:
                log.warning("could not advertise this worker's devices; retrying", exc_info=True)
            time.sleep(0.5)

    threading.Thread(target=advertise, name="trainyard-advertise-devices", daemon=True).start()


_maintenance: Maintenance | None = None
_study_driver: DriverThread | None = None


@worker_ready.connect
def start_maintenance(sender: object = None, **_: object) -> None:
    """In the main process, once it consumes: report this worker, sweep, watch the children."""
    global _maintenance
    consumer = sender
    name = str(getattr(consumer, "hostname", None) or f"trainyard-{socket.gethostname()}")
    queues = sorted(celery_app.amqp.queues.consume_from or celery_app.amqp.queues)
    _maintenance = Maintenance(get_settings(), name, queues, _devices)
    _maintenance.start()
    # Studies go on while no `serve` runs: one driver at a time across the cluster (a lock).
    global _study_driver
    _study_driver = DriverThread(get_settings())
    _study_driver.start()


@worker_shutting_down.connect
def hand_back_running_jobs(**_: object) -> None:
    """SIGTERM or Ctrl-C: the children running jobs checkpoint and hand them back (app.jobs.runner)."""
    if _study_driver is not None:
        _study_driver.stop()
    if _maintenance is not None:
        _maintenance.shut_down()


@worker_shutdown.connect
def remove_worker_row(**_: object) -> None:
    if _maintenance is not None:
        _maintenance.remove()


celery_app = create_celery()
