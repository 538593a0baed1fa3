"""FastAPI dependencies: the one way in for settings, sessions and the serving service.

The cheap ones are `async def`: FastAPI runs a plain `def` dependency in its thread pool, a
hop that costs more than a small model's whole inference.
"""

from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from app.config import Settings
from app.cpu_pool import CpuPool, ProcessPool
from app.db.session import get_sessionmaker
from app.explain.service import Explainer
from app.serving.service import ServingService


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    session = get_sessionmaker(settings.sqlalchemy_url)()
    try:
        yield session
    finally:
        session.close()


# scope="function": the session (and its pooled connection) is closed when the endpoint returns,
# not held open, idle in a transaction, while a stream or a file is sent.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_serving(request: Request) -> ServingService:
    serving: ServingService = request.app.state.serving
    return serving


ServingDep = Annotated[ServingService, Depends(get_serving)]


async def get_cpu(request: Request) -> CpuPool:
    cpu: CpuPool = request.app.state.cpu
    return cpu


CpuDep = Annotated[CpuPool, Depends(get_cpu)]


async def get_explainer(request: Request) -> Explainer:
    explainer: Explainer = request.app.state.explainer
    return explainer


ExplainerDep = Annotated[Explainer, Depends(get_explainer)]


async def get_processes(request: Request) -> ProcessPool:
    processes: ProcessPool = request.app.state.processes
    return processes


ProcessesDep = Annotated[ProcessPool, Depends(get_processes)]


class View(StrEnum):
    """How much of a dataset or job object a response holds."""

    SUMMARY = "summary"  # every scalar field; the schema or spec as counts and a link to the rest
    FULL = "full"  # the whole object, as stored


ViewQuery = Annotated[
    View,
    Query(description="`summary` (default): the object without its bulky schema or spec; `full`: all of it"),
]
