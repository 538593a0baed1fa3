"""Response bodies of /v1/datasets: each dataset as a summary (the default) or in full."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class DatasetOut(BaseModel):
    """The whole dataset object (`?view=full`): its schema with every column."""

    model_config = ConfigDict(from_attributes=True)

    view: Literal["full"] = "full"
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


class FeaturesSummary(BaseModel):
    """What a summary keeps of `features`: counts instead of the per-column lists."""

    shape: list[int]
    dtype: str
    n_columns: int | None = Field(description="named feature columns (tabular data); null for arrays and images")
    n_categorical: int = Field(description="text columns stored as categories")
    n_missing: int = Field(description="columns with empty numeric cells (`features.missing` in full)")
    color_mode: str | None = None  # images only


class TargetSummary(BaseModel):
    """What a summary keeps of `target`: the label columns and how many classes (not the classes)."""

    shape: list[int]
    dtype: str
    columns: list[str] | None
    n_classes: int | None


class DatasetSummary(BaseModel):
    """A dataset as answered by default: every scalar field, the schema reduced to counts."""

    view: Literal["summary"] = "summary"
    id: str
    name: str
    project: str
    format: str
    sha256: str
    size_bytes: int
    n_rows: int
    features: FeaturesSummary
    target: TargetSummary
    warnings: list[str]
    created_at: datetime
    schema_url: str = Field(description="where the full object lives: `/v1/datasets/{id}?view=full`")

    @classmethod
    def of(cls, full: DatasetOut) -> "DatasetSummary":
        features, target = full.features, full.target
        columns = features.get("column_types") or []
        return cls(
            id=full.id,
            name=full.name,
            project=full.project,
            format=full.format,
            sha256=full.sha256,
            size_bytes=full.size_bytes,
            n_rows=full.n_rows,
            features=FeaturesSummary(
                shape=features["shape"],
                dtype=features["dtype"],
                n_columns=len(features["columns"]) if features.get("columns") is not None else None,
                n_categorical=sum(1 for column in columns if column.get("kind") == "categorical"),
                n_missing=len(features.get("missing") or {}),
                color_mode=features.get("color_mode"),
            ),
            target=TargetSummary(
                shape=target["shape"],
                dtype=target["dtype"],
                columns=target.get("columns"),
                n_classes=target.get("n_classes"),
            ),
            warnings=full.warnings,
            created_at=full.created_at,
            schema_url=f"/v1/datasets/{full.id}?view=full",
        )


# Either view, told apart by `view` (a discriminator in the OpenAPI document too).
DatasetView = Annotated[DatasetSummary | DatasetOut, Field(discriminator="view")]


class DatasetPage(BaseModel):
    items: list[DatasetView]
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
