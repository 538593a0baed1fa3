"""/v1/spec: the job spec's JSON Schema and the catalog of what it may use (for UIs and clients)."""

from typing import Any

from fastapi import APIRouter, Depends

from app.auth.deps import ScopeRule
from app.auth.principal import Scope
from app.jobs.schemas import JobCreate
from app.ml.catalog import catalog

router = APIRouter(prefix="/v1/spec", tags=["spec"], dependencies=[Depends(ScopeRule(Scope.READ))])


@router.get("/schema")
def spec_schema() -> dict[str, Any]:
    """JSON Schema of the body of `POST /v1/jobs` (the same one the OpenAPI document holds)."""
    return JobCreate.model_json_schema()


@router.get("/catalog")
def spec_catalog() -> dict[str, Any]:
    """Every layer, optimizer, schedule, loss, metric, activation, initializer, regularizer and
    constraint a spec may name, with its arguments and their defaults."""
    return catalog()
