"""/v2: the Open Inference Protocol (KServe V2, what `tritonclient` speaks): health, server and
model metadata, model readiness and infer, with or without a version in the URL."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app import __version__
from app.api.deps import ServingDep, SessionDep
from app.api.health import database_reachable
from app.auth.deps import OPEN, PredictKey, ServingReadKey
from app.registry import service
from app.serving import v2
from app.serving.runtimes import PLATFORMS
from app.serving.service import ServingService

router = APIRouter(prefix="/v2", tags=["inference (Open Inference Protocol)"])

ModelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
# Bounded to what the database stores (a larger number would fail in the driver, a 500).
Version = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("")
async def server_metadata(principal: ServingReadKey) -> dict[str, Any]:
    return {"name": "trainyard", "version": __version__, "extensions": ["binary_tensor_data"]}


@router.get("/health/live", dependencies=[Depends(OPEN)])
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", dependencies=[Depends(OPEN)])
async def ready(request: Request) -> JSONResponse:
    # Ready to serve when the registry can be read: it says which version a name means.
    ok = await run_in_threadpool(database_reachable, request.app.state.settings.sqlalchemy_url)
    body: dict[str, Any] = {"ready": ok}
    if not ok:
        body["error"] = "the model registry (database) is unreachable"
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/models/{name}")
async def model_metadata(name: ModelName, session: SessionDep, serving: ServingDep, principal: ServingReadKey) -> Any:
    return await _metadata(session, serving, principal.project_filter, name)


@router.get("/models/{name}/versions/{version}")
async def version_metadata(
    name: ModelName, version: Version, session: SessionDep, serving: ServingDep, principal: ServingReadKey
) -> Any:
    return await _metadata(session, serving, principal.project_filter, name, version)


async def _metadata(
    session: SessionDep, serving: ServingService, project: str | None, name: str, version: int | None = None
) -> dict[str, Any]:
    served = await serving.resolve(name, version, project=project)
    if version is None:
        rows = await run_in_threadpool(service.versions, session, name)
        versions = [str(row.version) for row in rows]
    else:
        versions = [str(version)]
    return {
        "name": served.name,
        "versions": versions,
        "platform": PLATFORMS.get(served.runtime, served.runtime),
        "inputs": [v2.tensor_metadata(spec) for spec in served.inputs],
        "outputs": [v2.tensor_metadata(spec) for spec in served.outputs],
    }


@router.get("/models/{name}/ready")
async def model_ready(name: ModelName, serving: ServingDep, principal: ServingReadKey) -> JSONResponse:
    return await _ready(serving, principal.project_filter, name)


@router.get("/models/{name}/versions/{version}/ready")
async def version_ready(
    name: ModelName, version: Version, serving: ServingDep, principal: ServingReadKey
) -> JSONResponse:
    return await _ready(serving, principal.project_filter, name, version)


async def _ready(serving: ServingService, project: str | None, name: str, version: int | None = None) -> JSONResponse:
    # Loading is what makes a model ready: the check loads (and warms) it, then answers.
    served = await serving.resolve(name, version, project=project)
    await serving.try_load(name, version)
    state, error = serving.cache.state(served.key)
    body: dict[str, Any] = {"name": name, "ready": state == "AVAILABLE"}
    if error:
        body["error"] = error
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


@router.post("/models/{name}/infer")
async def infer(name: ModelName, request: Request, serving: ServingDep, principal: PredictKey) -> Response:
    return await _infer(request, serving, principal.project_filter, name)


@router.post("/models/{name}/versions/{version}/infer")
async def infer_version(
    name: ModelName, version: Version, request: Request, serving: ServingDep, principal: PredictKey
) -> Response:
    return await _infer(request, serving, principal.project_filter, name, version)


async def _infer(
    request: Request, serving: ServingService, project: str | None, name: str, version: int | None = None
) -> Response:
    model = await serving.model(name, version, project=project)
    header_length = request.headers.get(v2.HEADER_LENGTH)
    body, json_length = await serving.infer_v2(model, await request.body(), header_length)
    if json_length is None:
        return Response(body, media_type="application/json")
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(json_length)},
    )
