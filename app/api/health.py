"""/healthz (process up), /readyz (database and broker reachable), /metrics (Prometheus)."""

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app import queue
from app.api.deps import SettingsDep
from app.db.session import get_engine

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(settings: SettingsDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(_ping_database, settings.sqlalchemy_url)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        await run_in_threadpool(queue.ping_broker, settings)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unreachable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    if not ready:
        body["error"] = "; ".join(f"{k} {v}" for k, v in checks.items() if v != "ok")
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _ping_database(url: str) -> None:
    with get_engine(url).connect() as connection:
        connection.execute(text("SELECT 1"))


def database_reachable(url: str) -> bool:
    try:
        _ping_database(url)
    except Exception:
        return False
    return True
