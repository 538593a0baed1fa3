"""/v1/models: registry status and metadata, labels, artifacts and TF Serving-style predict."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from app.api.deps import ServingDep, SessionDep, SettingsDep, View, ViewQuery
from app.api.jobs import job_in_view
from app.auth.deps import DeployKey, PredictKey, ReadKey, ServingReadKey, SubmitKey
from app.auth.limits import check_job_quota
from app.compress import service as compress
from app.compress.schemas import Comparison, CompressRequest
from app.errors import NotFound
from app.jobs import service as jobs
from app.jobs.schemas import JobOut, JobSummary, JobView
from app.models import ModelVersion
from app.registry import service
from app.registry.schemas import (
    PREDICT_BODY,
    LabelUpdate,
    ModelItem,
    ModelList,
    ModelMetadata,
    ModelStatus,
)
from app.serving.service import ServingService

router = APIRouter(prefix="/v1/models", tags=["models"])

ModelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Label = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
# Bounded to what the database stores (a larger number would fail in the driver, a 500).
Version = Annotated[int, Path(ge=1, le=2**63 - 1)]
JSON = "application/json"


@router.get("", response_model=ModelList)
def list_models(
    session: SessionDep,
    principal: ReadKey,
    project: Annotated[str | None, Query(max_length=64, description="admin keys: one project's only")] = None,
) -> ModelList:
    models = service.list_models(session, principal.list_filter(project))
    return ModelList(items=[ModelItem(**vars(m)) for m in models])


@router.get("/{name}", response_model=ModelStatus)
async def model_status(
    name: ModelName, session: SessionDep, serving: ServingDep, principal: ServingReadKey
) -> ModelStatus:
    return await _status(session, serving, principal.project_filter, name)


@router.get("/{name}/versions/{version}", response_model=ModelStatus)
async def version_status(
    name: ModelName, version: Version, session: SessionDep, serving: ServingDep, principal: ServingReadKey
) -> ModelStatus:
    return await _status(session, serving, principal.project_filter, name, version=version)


@router.get("/{name}/labels/{label}", response_model=ModelStatus)
async def label_status(
    name: ModelName, label: Label, session: SessionDep, serving: ServingDep, principal: ServingReadKey
) -> ModelStatus:
    return await _status(session, serving, principal.project_filter, name, label=label)


async def _status(
    session: SessionDep,
    serving: ServingService,
    project: str | None,
    name: str,
    version: int | None = None,
    label: str | None = None,
) -> ModelStatus:
    # The version a bare name, version or label serves is loaded (and warmed) first: it is
    # AVAILABLE once that is done. Other versions show what this process holds.
    versions = await run_in_threadpool(service.versions, session, name, version, label, project)
    await serving.try_load(name, version, label)
    return ModelStatus.of(versions, serving.states(versions))


@router.get("/{name}/metadata", response_model=ModelMetadata)
def model_metadata(name: ModelName, session: SessionDep, principal: ServingReadKey) -> ModelMetadata:
    return ModelMetadata.of(service.resolve(session, name, project=principal.project_filter))


@router.get("/{name}/versions/{version}/metadata", response_model=ModelMetadata)
def version_metadata(
    name: ModelName, version: Version, session: SessionDep, principal: ServingReadKey
) -> ModelMetadata:
    return ModelMetadata.of(service.resolve(session, name, version=version, project=principal.project_filter))


@router.get("/{name}/labels/{label}/metadata", response_model=ModelMetadata)
def label_metadata(name: ModelName, label: Label, session: SessionDep, principal: ServingReadKey) -> ModelMetadata:
    return ModelMetadata.of(service.resolve(session, name, label=label, project=principal.project_filter))


@router.put("/{name}/labels/{label}", response_model=ModelStatus)
async def set_label(
    name: ModelName, label: Label, body: LabelUpdate, session: SessionDep, serving: ServingDep, principal: DeployKey
) -> ModelStatus:
    # Warm the new version before the label moves: requests never wait for its load.
    target: ModelVersion = await run_in_threadpool(
        service.resolve, session, name, body.version, None, principal.project_filter
    )
    await serving.warm(serving.describe(target))
    await run_in_threadpool(service.set_label, session, name, label, body.version)
    serving.forget(name)
    return ModelStatus.of([target], serving.states([target]))


@router.post("/{name}/versions/{version}/compress", status_code=status.HTTP_202_ACCEPTED, response_model=JobView)
def compress_version(
    name: ModelName,
    version: Version,
    body: CompressRequest,
    session: SessionDep,
    settings: SettingsDep,
    principal: SubmitKey,
    view: ViewQuery = View.SUMMARY,
) -> JobOut | JobSummary:
    """Queue a compression job (int8, float16, prune) of a ready version: 202 and the job; the
    worker registers the result as the next version of `register_as` with its lineage and bill."""
    check_job_quota(session, settings, principal.project)
    job = compress.submit(session, settings, name, version, body, principal.project_filter)
    return job_in_view(job, view, jobs.waiting_for(session, settings, [job]).get(job.id))


@router.get("/{name}/compare", response_model=Comparison)
def compare_versions(
    name: ModelName,
    session: SessionDep,
    principal: ReadKey,
    a: Annotated[int, Query(ge=1, le=2**63 - 1, description="the baseline version")],
    b: Annotated[int, Query(ge=1, le=2**63 - 1, description="the version compared with it")],
) -> Comparison:
    """Both versions' bills side by side; `ratios` are b / a, `deltas` b - a (metrics)."""
    return compress.compare(session, name, a, b, principal.project_filter)


@router.get("/{name}/versions/{version}/artifact")
def download_artifact(
    name: ModelName, version: Version, session: SessionDep, settings: SettingsDep, principal: ReadKey
) -> FileResponse:
    found = service.resolve(session, name, version=version, project=principal.project_filter)
    path = settings.artifacts_dir / found.artifact_path
    if not path.is_file():
        raise NotFound(f"the artifact of {name} version {version} is missing from the store")
    return FileResponse(path, media_type="application/octet-stream", filename=f"{name}-v{version}.keras")


# Predict parses the body by hand: TF Serving clients (and `curl -d`) often send no JSON content
# type, and per-element pydantic validation of large inputs is slow; shapes are checked once.
@router.post("/{name}:predict", openapi_extra=PREDICT_BODY)
async def predict_latest(name: ModelName, request: Request, serving: ServingDep, principal: PredictKey) -> Response:
    model = await serving.model(name, project=principal.project_filter)
    return Response(await serving.predict_tfserving(model, await request.body()), media_type=JSON)


@router.post("/{name}/versions/{version}:predict", openapi_extra=PREDICT_BODY)
async def predict_version(
    name: ModelName, version: Version, request: Request, serving: ServingDep, principal: PredictKey
) -> Response:
    model = await serving.model(name, version=version, project=principal.project_filter)
    return Response(await serving.predict_tfserving(model, await request.body()), media_type=JSON)


@router.post("/{name}/labels/{label}:predict", openapi_extra=PREDICT_BODY)
async def predict_label(
    name: ModelName, label: Label, request: Request, serving: ServingDep, principal: PredictKey
) -> Response:
    model = await serving.model(name, label=label, project=principal.project_filter)
    return Response(await serving.predict_tfserving(model, await request.body()), media_type=JSON)
