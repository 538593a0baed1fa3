"""/healthz (process up), /readyz (database, broker, and a worker for every queue), /metrics."""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text

from app import queue
from app.api.deps import SettingsDep
from app.auth.deps import OPEN, ScopeRule
from app.auth.principal import Scope
from app.config import Settings
from app.db.session import get_engine, session_scope
from app.embedded.supervisor import Supervisor, WorkerState
from app.worker_registry import readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", dependencies=[Depends(OPEN)])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", dependencies=[Depends(OPEN)])
async def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    """200 when the database and broker answer and a live worker consumes every queue that has
    jobs (in embedded mode: when `serve`'s own worker consumes); 503 naming what is missing."""
    embedded: Supervisor | None = request.app.state.embedded_worker
    worker = await run_in_threadpool(embedded.state) if embedded is not None else None
    checks = {
        "database": await _check(_ping_database, settings.sqlalchemy_url),
        "broker": await _check(queue.ping_broker, settings),
    }
    if request.app.state.runs_jobs:  # a serving-only process is ready without training workers
        checks["workers"] = await run_in_threadpool(_workers_check, settings, worker, checks["database"] == "ok")
        # A submit checks its spec in a pool process: not ready while that process still starts.
        checks["spec_checks"] = request.app.state.processes.readiness()
    ready = all(value == "ok" for value in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": checks}
    if worker is not None:
        body["embedded_worker"] = {"pid": worker.pid, "consuming": worker.consuming, "restarts": worker.restarts}
    if not ready:
        body["error"] = "; ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    return JSONResponse(body, status_code=200 if ready else 503)


# Every project's model names are in the metrics: an admin key reads them.
@router.get("/metrics", dependencies=[Depends(ScopeRule(Scope.ADMIN))])
def metrics(request: Request) -> Response:
    """This process's series (serving, submits), then the training series read from the database
    (app.jobs.metrics; absent from a serving-only process)."""
    body = generate_latest()
    training: CollectorRegistry | None = getattr(request.app.state, "training_metrics", None)
    if training is not None:
        body += generate_latest(training)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _ping_database(url: str) -> None:
    with get_engine(url).connect() as connection:
        connection.execute(text("SELECT 1"))


async def _check(probe: Callable[..., object], *args: Any) -> str:
    try:
        await run_in_threadpool(probe, *args)
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def _workers_check(settings: Settings, worker: WorkerState | None, database_ok: bool) -> str:
    if not database_ok:
        return "unknown: the database is unreachable"
    with session_scope(settings.sqlalchemy_url) as session:
        if worker is not None:
            problem = readiness.embedded_worker_problem(session, worker.problem())
        else:
            problem = readiness.unconsumed_queues(session, settings)
    return problem or "ok"


def database_reachable(url: str) -> bool:
    try:
        _ping_database(url)
    except Exception:
        return False
    return True
