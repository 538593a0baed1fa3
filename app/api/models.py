"""/v1/models: registry status and metadata, labels, artifacts and TF Serving-style predict."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from app.api.deps import PredictorDep, SessionDep, SettingsDep
from app.errors import NotFound
from app.registry import service
from app.registry.schemas import (
    PREDICT_BODY,
    LabelUpdate,
    ModelItem,
    ModelList,
    ModelMetadata,
    ModelStatus,
)
from app.serving.predict import parse_predict_body

router = APIRouter(prefix="/v1/models", tags=["models"])

ModelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Label = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Version = Annotated[int, Path(ge=1)]


@router.get("", response_model=ModelList)
def list_models(session: SessionDep) -> ModelList:
    return ModelList(items=[ModelItem(**vars(m)) for m in service.list_models(session)])


@router.get("/{name}", response_model=ModelStatus)
def model_status(name: ModelName, session: SessionDep) -> ModelStatus:
    return ModelStatus.of(service.versions(session, name))


@router.get("/{name}/versions/{version}", response_model=ModelStatus)
def version_status(name: ModelName, version: Version, session: SessionDep) -> ModelStatus:
    return ModelStatus.of(service.versions(session, name, version=version))


@router.get("/{name}/labels/{label}", response_model=ModelStatus)
def label_status(name: ModelName, label: Label, session: SessionDep) -> ModelStatus:
    return ModelStatus.of(service.versions(session, name, label=label))


@router.get("/{name}/metadata", response_model=ModelMetadata)
def model_metadata(name: ModelName, session: SessionDep) -> ModelMetadata:
    return ModelMetadata.of(service.resolve(session, name))


@router.get("/{name}/versions/{version}/metadata", response_model=ModelMetadata)
def version_metadata(name: ModelName, version: Version, session: SessionDep) -> ModelMetadata:
    return ModelMetadata.of(service.resolve(session, name, version=version))


@router.put("/{name}/labels/{label}", response_model=ModelStatus)
def set_label(name: ModelName, label: Label, body: LabelUpdate, session: SessionDep) -> ModelStatus:
    service.set_label(session, name, label, body.version)
    return ModelStatus.of(service.versions(session, name, label=label))


@router.get("/{name}/versions/{version}/artifact")
def download_artifact(name: ModelName, version: Version, session: SessionDep, settings: SettingsDep) -> FileResponse:
    found = service.resolve(session, name, version=version)
    path = settings.artifacts_dir / found.artifact_path
    if not path.is_file():
        raise NotFound(f"the artifact of {name} version {version} is missing from the store")
    return FileResponse(path, media_type="application/octet-stream", filename=f"{name}-v{version}.keras")


@router.post("/{name}:predict", openapi_extra=PREDICT_BODY)
async def predict_latest(
    name: ModelName, request: Request, session: SessionDep, predictor: PredictorDep
) -> dict[str, Any]:
    return await _predict(request, session, predictor, name)


@router.post("/{name}/versions/{version}:predict", openapi_extra=PREDICT_BODY)
async def predict_version(
    name: ModelName,
    version: Version,
    request: Request,
    session: SessionDep,
    predictor: PredictorDep,
) -> dict[str, Any]:
    return await _predict(request, session, predictor, name, version=version)


@router.post("/{name}/labels/{label}:predict", openapi_extra=PREDICT_BODY)
async def predict_label(
    name: ModelName, label: Label, request: Request, session: SessionDep, predictor: PredictorDep
) -> dict[str, Any]:
    return await _predict(request, session, predictor, name, label=label)


async def _predict(
    request: Request,
    session: SessionDep,
    predictor: PredictorDep,
    name: str,
    version: int | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    # Parsed by hand: TF Serving clients (and `curl -d`) often send no JSON content type, and
    # per-element pydantic validation of large inputs is slow; shapes are checked once instead.
    body = parse_predict_body(await request.body())
    found = await run_in_threadpool(service.resolve, session, name, version, label)
    if "instances" in body:
        return {"predictions": await run_in_threadpool(predictor.predict_rows, found, body["instances"])}
    return {"outputs": await run_in_threadpool(predictor.predict_rows, found, body["inputs"])}
