"""create_app(): the FastAPI application, its error handlers, routers and background sweep.

`create_serving_app()` is the same application with only the inference side (/v1/models, /v2,
health and metrics): no datasets or jobs, no recovery sweep, and no TensorFlow import (versions
exported to ONNX are served by ONNX Runtime), for processes that only serve predictions.
"""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from app import __version__
from app.api.errors import install_error_handlers
from app.api.fast_path import ServingApp
from app.api.serving_routes import serving_router
from app.config import Settings, get_settings
from app.db.base import utcnow
from app.db.session import session_scope
from app.serving.lookup import registry_lookup
from app.serving.service import ServingService

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, serving_only: bool = False) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything imported so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise walk it all and stall requests (p99).
        gc.collect()
        gc.freeze()
        if serving_only:
            yield
            return
        sweeper = asyncio.create_task(_sweep_forever(settings, started_at=utcnow()))
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper

    app = ServingApp(title="trainyard", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.serving = ServingService(settings, registry_lookup(settings))
    install_error_handlers(app)
    if serving_only:
        app.include_router(serving_router)
    else:
        from app.api.router import api_router  # jobs validate specs with Keras: not imported
        # by a serving-only process

        app.include_router(api_router)
    return app


def create_serving_app(settings: Settings | None = None) -> FastAPI:
    """The inference side only: for `trainyard serve --serving-only`."""
    return create_app(settings, serving_only=True)


async def _sweep_forever(settings: Settings, started_at: datetime) -> None:
    """Recover lost and stalled jobs (app.jobs.recovery) every `sweep_interval_s`.

    With the embedded broker, the first pass also re-sends every queued job sent before this
    process started: a message its previous worker had taken but not finished is gone.
    """
    resend_before: datetime | None = started_at if settings.broker_is_local else None
    while True:
        try:
            await run_in_threadpool(_sweep_once, settings, resend_before)
            resend_before = None
        except Exception:
            log.exception("recovery sweep failed; retrying in %ss", settings.sweep_interval_s)
        await asyncio.sleep(settings.sweep_interval_s)


def _sweep_once(settings: Settings, resend_before: datetime | None) -> None:
    from app.jobs.recovery import sweep

    with session_scope(settings.sqlalchemy_url) as session:
        sweep(session, settings, resend_before)
