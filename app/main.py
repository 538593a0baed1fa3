"""create_app(): the FastAPI application, its error handlers, routers and background sweep."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from app import __version__
from app.api.errors import install_error_handlers
from app.api.router import api_router
from app.config import Settings, get_settings
from app.db.base import utcnow
from app.db.session import session_scope
from app.jobs.recovery import sweep
from app.serving.service import Predictor

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep_forever(settings, started_at=utcnow()))
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper

    app = FastAPI(title="trainyard", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.predictor = Predictor(settings)
    install_error_handlers(app)
    app.include_router(api_router)
    return app


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
    with session_scope(settings.sqlalchemy_url) as session:
        sweep(session, settings, resend_before)
