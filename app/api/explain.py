"""`:explain` (feature attributions of predictions) and a version's permutation importance."""

from fastapi import APIRouter

from app.api.deps import ExplainerDep, ServingDep, SessionDep
from app.api.models import Label, ModelName, Version
from app.auth.deps import PredictKey, ServingReadKey
from app.errors import Conflict
from app.explain.schemas import ExplainRequest, ExplainResponse, Importance, NoImportance
from app.registry import service

router = APIRouter(prefix="/v1/models", tags=["explain"])


@router.post("/{name}:explain", response_model=ExplainResponse)
async def explain_latest(
    name: ModelName, body: ExplainRequest, serving: ServingDep, explainer: ExplainerDep, principal: PredictKey
) -> ExplainResponse:
    return await explainer.explain(await serving.resolve(name, project=principal.project_filter), body)


@router.post("/{name}/versions/{version}:explain", response_model=ExplainResponse)
async def explain_version(
    name: ModelName,
    version: Version,
    body: ExplainRequest,
    serving: ServingDep,
    explainer: ExplainerDep,
    principal: PredictKey,
) -> ExplainResponse:
    served = await serving.resolve(name, version=version, project=principal.project_filter)
    return await explainer.explain(served, body)


@router.post("/{name}/labels/{label}:explain", response_model=ExplainResponse)
async def explain_label(
    name: ModelName,
    label: Label,
    body: ExplainRequest,
    serving: ServingDep,
    explainer: ExplainerDep,
    principal: PredictKey,
) -> ExplainResponse:
    served = await serving.resolve(name, label=label, project=principal.project_filter)
    return await explainer.explain(served, body)


@router.get("/{name}/versions/{version}/importance", response_model=Importance)
def version_importance(name: ModelName, version: Version, session: SessionDep, principal: ServingReadKey) -> Importance:
    """Permutation importance the worker computed after training; 409 with the reason when none."""
    found = service.resolve(session, name, version=version, project=principal.project_filter)
    if found.importance is None:
        raise Conflict(f"{name} version {version} has no importance: it was registered before importance was computed")
    if "reason" in found.importance:
        raise Conflict(f"{name} version {version} has no importance: {NoImportance(**found.importance).reason}")
    return Importance.model_validate(found.importance)
