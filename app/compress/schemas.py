"""Bodies of the compress endpoint, and the `lineage` and `bill` a version carries."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.ml.objects import SpecModel

Method = Literal["int8", "float16", "prune"]
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


class CompressRequest(SpecModel):
    """`POST /v1/models/{name}/versions/{v}/compress`. `sparsity` and `fine_tune_epochs` are
    pruning's: the share of kernel weights set to zero, and the epochs of the fine-tune after."""

    method: Method
    sparsity: float | None = Field(default=None, gt=0.0, lt=1.0)
    fine_tune_epochs: int | None = Field(default=None, ge=0, le=100)
    register_as: ModelName | None = None

    @model_validator(mode="after")
    def _pruning_settings(self) -> "CompressRequest":
        if self.method == "prune":
            if self.sparsity is None:
                self.sparsity = 0.5
            if self.fine_tune_epochs is None:
                self.fine_tune_epochs = 2
        elif self.sparsity is not None or self.fine_tune_epochs is not None:
            field = "sparsity" if self.sparsity is not None else "fine_tune_epochs"
            raise ValueError(f"{field} is a setting of method 'prune' only, not of {self.method!r}")
        return self


class SourceRef(BaseModel):
    model: str
    version: int


class Lineage(BaseModel):
    """Where a version came from: the version it was distilled from or compressed from."""

    kind: Literal["distilled", "compressed"]
    source: SourceRef
    settings: dict[str, Any]


class LatencyMs(BaseModel):
    """Median milliseconds of one call of the serving runtime, on 1 row and on 64 rows."""

    rows_1: float
    rows_64: float


class Bill(BaseModel):
    """What a version costs and how well it does, measured by the worker in one run.

    `metrics` are computed from the serving runtime's outputs on the held-out rows of the source
    version's dataset (`split`: "test", else "validation"; "none" when the dataset is gone)."""

    model_config = ConfigDict(extra="forbid")

    params: int
    artifact_bytes: int  # the file the serving runtime loads (model.onnx, else model.keras)
    keras_bytes: int  # the .keras file (the download at /artifact)
    runtime: str
    latency_ms: LatencyMs
    metrics: dict[str, float]
    split: Literal["test", "validation", "none"]
    rows: int


class VersionBill(BaseModel):
    version: int
    lineage: Lineage | None
    bill: Bill | None


class Comparison(BaseModel):
    """`GET /v1/models/{name}/compare?a=V&b=W`: both bills, and b against a (b / a)."""

    model: str
    a: VersionBill
    b: VersionBill
    ratios: dict[str, float]
    deltas: dict[str, float]
