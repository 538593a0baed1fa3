"""API shapes of keys: what `POST /v1/keys` takes, and the key object (the key itself once)."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.auth.principal import PROJECT_PATTERN, Scope
from app.config import Settings
from app.models import DEFAULT_PROJECT, ApiKey

ProjectName = Annotated[str, Field(pattern=PROJECT_PATTERN, description="lower-case letters, digits, . _ -")]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: ProjectName = DEFAULT_PROJECT
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    name: str = Field(default="", max_length=200)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650, allow_inf_nan=False)


class KeyLimits(BaseModel):
    """The limits that apply to a key (server settings; 0 rates mean unlimited)."""

    submit_per_s: float
    predict_per_s: float
    max_active_jobs_per_project: int
    max_dataset_bytes_per_project: int

    @classmethod
    def of(cls, settings: Settings) -> "KeyLimits":
        return cls(
            submit_per_s=settings.submit_rate_per_key,
            predict_per_s=settings.predict_rate_per_key,
            max_active_jobs_per_project=settings.max_active_jobs_per_project,
            max_dataset_bytes_per_project=settings.max_dataset_bytes_per_project,
        )


class KeyOut(BaseModel):
    id: str
    name: str
    project: str
    scopes: list[Scope]
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    limits: KeyLimits

    @classmethod
    def of(cls, row: ApiKey, settings: Settings) -> "KeyOut":
        return cls(
            id=row.id,
            name=row.name,
            project=row.project,
            scopes=[Scope(s) for s in row.scopes],
            prefix=row.prefix,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            limits=KeyLimits.of(settings),
        )


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself: shown this once, never stored.")


class KeyList(BaseModel):
    items: list[KeyOut]
