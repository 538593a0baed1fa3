"""create_app(): the FastAPI application, its error handlers, routers and background sweep.

`create_serving_app()` is the same application with only the inference side (/v1/models, /v2,
health and metrics): no datasets or jobs, no recovery sweep, and no TensorFlow import (versions
exported to ONNX are served by ONNX Runtime), for processes that only serve predictions.
"""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from app import __version__
from app.api.errors import install_error_handlers
from app.api.fast_path import ServingApp
from app.api.limits import BodyLimitMiddleware
from app.api.openapi import install_openapi
from app.api.serving_routes import serving_router
from app.auth.authenticator import Authenticator
from app.auth.local_guard import is_loopback_name
from app.config import Settings, get_settings
from app.cpu_pool import CpuPool, ProcessPool
from app.db.base import utcnow
from app.db.session import session_scope
from app.embedded.supervisor import Supervisor
from app.events.fanout import RecentEvents
from app.events.wakeup import Bell, ring_forever
from app.explain.service import Explainer
from app.serving.lookup import registry_lookup
from app.serving.service import ServingService

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    serving_only: bool = False,
    embedded_worker: Supervisor | None = None,
    listen_hosts: Sequence[str] = ("127.0.0.1",),
) -> FastAPI:
    """The application.

    Args:
        embedded_worker: `serve`'s supervised worker, which /readyz asks.
        listen_hosts: the addresses the server listens on: with TRAINYARD_AUTH=auto, keys are
            required unless every one is loopback. (An ASGI server started by other means than
            `serve` on a public address must set TRAINYARD_AUTH=on.)
    """
    settings = settings or get_settings()
    settings.ensure_dirs()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything imported so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise walk it all and stall requests (p99).
        gc.collect()
        gc.freeze()
        # Started in the background: the port opens without waiting for them.
        app.state.serving.decoders.warm()
        if not serving_only:
            app.state.processes.warm()
        if serving_only:
            yield
            return
        sweeper = asyncio.create_task(_sweep_forever(settings, started_at=utcnow()))
        bell_ringer = asyncio.create_task(ring_forever(settings, app.state.event_bell))
        study_driver = asyncio.create_task(_drive_studies_forever(settings))
        yield
        for task in (sweeper, bell_ringer, study_driver):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if embedded_worker is not None:
            # Here, not after uvicorn.run returns: uvicorn re-raises SIGTERM once it has shut
            # down, which would end serve before the worker had its grace period.
            await run_in_threadpool(embedded_worker.stop)

    app = ServingApp(title="trainyard", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.embedded_worker = embedded_worker
    app.state.runs_jobs = not serving_only  # /readyz then asks whether workers consume the queues
    # Requests' CPU-heavy work (spec checks, dataset parsing, large predict bodies) runs here,
    # never on the event loop (app/cpu_pool.py).
    app.state.cpu = CpuPool(settings.cpu_workers, settings.cpu_queue, settings.cpu_budget_s)
    # The job door's spec checks: in processes that import Keras, so this one need not.
    app.state.processes = ProcessPool(
        settings.cpu_processes, settings.cpu_queue, settings.cpu_budget_s, warm_up="app.ml.door:warm_up"
    )
    app.state.serving = ServingService(settings, registry_lookup(settings), app.state.cpu)
    app.state.explainer = Explainer(settings, app.state.cpu)  # loads Keras only when asked
    app.state.event_bell = Bell()  # rung by `ring_forever` when the job event log grows
    app.state.recent_events = RecentEvents(settings.sqlalchemy_url)  # one read per wake for all streams
    app.state.auth = Authenticator(settings, auth_required(settings, listen_hosts))
    app.state.cors_origins = frozenset(settings.cors_origins)
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    install_error_handlers(app)
    install_openapi(app)
    if settings.cors_origins:
        # No credentials: keys travel in the Authorization header, which a page must set itself.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Inference-Header-Content-Length"],
            expose_headers=["Retry-After", "Inference-Header-Content-Length", "WWW-Authenticate"],
        )
    if serving_only:
        app.include_router(serving_router)
    else:
        from app.api.router import api_router  # jobs validate specs with Keras: not imported

        # by a serving-only process
        from app.jobs.metrics import training_registry

        app.include_router(api_router)
        app.state.training_metrics = training_registry(settings)
    return app


def create_serving_app(settings: Settings | None = None, listen_hosts: Sequence[str] = ("127.0.0.1",)) -> FastAPI:
    """The inference side only: for `trainyard serve --serving-only`."""
    return create_app(settings, serving_only=True, listen_hosts=listen_hosts)


def auth_required(settings: Settings, listen_hosts: Sequence[str]) -> bool:
    """TRAINYARD_AUTH: `on`, `off`, or `auto`: required unless every listening address is loopback."""
    if settings.auth != "auto":
        return settings.auth == "on"
    return not all(is_loopback_name(host) for host in listen_hosts)


async def _sweep_forever(settings: Settings, started_at: datetime) -> None:
    """Recover lost jobs (app.jobs.recovery) every `sweep_interval_s`; every worker runs the
    same sweep, one process at a time.

    With the embedded broker, the first pass also re-sends every queued job sent before this
    process started: a message its previous worker had taken but not finished is gone.
    """
    resend_before: datetime | None = started_at if settings.broker_is_local else None
    while True:
        try:
            if await run_in_threadpool(_sweep_once, settings, resend_before):
                resend_before = None  # done once this process held the sweep lock
        except Exception:
            log.exception("recovery sweep failed; retrying in %ss", settings.sweep_interval_s)
        await asyncio.sleep(settings.sweep_interval_s)


async def _drive_studies_forever(settings: Settings) -> None:
    """Follow the running studies (app.studies.driver) every `study_interval_s`; every worker
    runs the same driver, one process at a time, so studies go on while this process is down."""
    from app.studies.driver import drive

    while True:
        try:
            await run_in_threadpool(drive, settings)
        except Exception:
            log.exception("study driver pass failed; retrying in %ss", settings.study_interval_s)
        await asyncio.sleep(settings.study_interval_s)


def _sweep_once(settings: Settings, resend_before: datetime | None) -> bool:
    """One pass, unless another process is doing one; returns whether this one did."""
    from app.jobs.recovery import sweep

    with session_scope(settings.sqlalchemy_url) as session:
        return sweep(session, settings, resend_before) is not None
