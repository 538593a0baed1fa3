"""The `trainyard` command: serve (API, plus a worker in embedded mode), worker, migrate."""

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
from typing import Annotated

import typer

from app.config import get_settings
from app.logs import configure_logging
from app.queue import QUEUES

cli = typer.Typer(help="trainyard: a REST model-training service.", no_args_is_help=True)
log = logging.getLogger("trainyard")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    serving_only: Annotated[
        bool,
        typer.Option(
            "--serving-only",
            help="Serve predictions only (/v1/models, /v2, health, metrics): no datasets or "
            "jobs, no worker, no TensorFlow for versions exported to ONNX.",
        ),
    ] = False,
) -> None:
    """Run the HTTP API. In embedded mode (no TRAINYARD_BROKER_URL) also start a worker."""
    import uvicorn

    from app.db.migrate import upgrade_to_head

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    upgrade_to_head(settings)
    worker = _start_embedded_worker() if settings.runs_embedded_worker and not serving_only else None
    log.info(
        "serving on http://%s:%s (database %s, broker %s, %s)",
        host,
        port,
        settings.sqlalchemy_url.split("@")[-1],  # no credentials in logs
        settings.celery_broker_url.split("@")[-1],
        "serving only" if serving_only else "embedded worker" if worker else "external workers",
    )
    factory = "app.main:create_serving_app" if serving_only else "app.main:create_app"
    try:
        uvicorn.run(
            factory,
            factory=True,
            host=host,
            port=port,
            log_config=None,
            access_log=settings.access_log,
            # uvloop and httptools: the C event loop and HTTP parser (uvicorn[standard]).
            loop="uvloop",
            http="httptools",
        )
    finally:
        if worker is not None:
            _stop(worker)


@cli.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: training, training.gpu.")] = "training",
    concurrency: Annotated[int, typer.Option(help="Jobs run at once (child processes).")] = 1,
    name: Annotated[str | None, typer.Option(help="Worker node name.")] = None,
) -> None:
    """Run a Celery worker that trains jobs from the broker."""
    from app.db.migrate import upgrade_to_head
    from app.db.session import dispose_engines

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    upgrade_to_head(settings)
    dispose_engines()  # children are forked from this process: leave them no shared sockets
    from celery.bin.celery import celery as celery_command

    node = name or f"trainyard-{os.getpid()}@{socket.gethostname()}"
    # The worker app is named, not imported: app.* never imports workers (DESIGN.md).
    celery_command.main(
        args=[
            "--app=workers.celery_app:celery_app",
            "worker",
            f"--queues={queues}",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            f"--hostname={node}",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
        ],
        prog_name="trainyard worker",
    )


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date (serve and worker also do this on start)."""
    from app.db.migrate import upgrade_to_head

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    upgrade_to_head(settings)
    typer.echo(f"schema up to date: {settings.sqlalchemy_url.split('@')[-1]}")


def _start_embedded_worker() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "worker",
            "--concurrency",
            "1",
            # One machine, one worker: it takes the GPU queue too, or such jobs would wait forever.
            "--queues",
            ",".join(QUEUES),
            "--name",
            f"embedded-{os.getpid()}@{socket.gethostname()}",
        ],
        preexec_fn=_die_with_parent,
    )


def _die_with_parent() -> None:
    # If `serve` is killed outright, the kernel sends the worker SIGTERM (Linux only).
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    # TensorFlow's C++ start-up chatter is not actionable for users of the service.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli()


if __name__ == "__main__":
    main()
