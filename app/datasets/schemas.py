"""Response bodies of /v1/datasets."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    project: str  # app.auth: whose it is
    format: str
    sha256: str
    size_bytes: int
    n_rows: int
    features: dict[str, Any]
    target: dict[str, Any]
    warnings: list[str] = []  # what parsing guessed or dropped
    created_at: datetime

    @field_validator("warnings", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value  # stored before warnings were kept


class DatasetPage(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None


class PreviewOut(BaseModel):
    """The first rows: a table for tabular data, else the sample shape and the targets."""

    dataset_id: str
    n_rows: int
    columns: list[str] | None
    rows: list[list[Any]] | None
    shape: list[int]
    targets: list[Any] | None


class ColumnStatsOut(BaseModel):
    name: str
    kind: str
    min: float
    max: float
    mean: float
    std: float
    missing: int
    # categorical columns: rows per vocabulary entry, in vocabulary order
    counts: list[int] | None = None


class TargetStatsOut(BaseModel):
    kind: str  # "classification" or "regression"
    histogram: dict[str, int] | None = None
    columns: list[ColumnStatsOut] | None = None


class StatsOut(BaseModel):
    dataset_id: str
    n_rows: int
    features: list[ColumnStatsOut]
    target: TargetStatsOut
