"""Bodies of `:explain` and `/importance` (API.md "Explain and studies")."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Method = Literal["integrated_gradients", "saliency"]


class ExplainRequest(BaseModel):
    """What to explain: rows as predict takes them, and how."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Any] = Field(min_length=1, description="rows as `:predict` takes them (raw rows included)")
    method: Method = "integrated_gradients"
    target: int | None = Field(
        default=None, ge=0, description="output unit to explain (default: each instance's top class; 0 for one unit)"
    )
    baseline: Any = Field(
        default=None,
        description="integrated gradients' starting point: a number, an instance-shaped array, or a raw row "
        "(default: zeros, and no category for categorical columns)",
    )
    steps: int = Field(default=50, ge=1, description="integrated gradients' integration points")


class Explanation(BaseModel):
    method: Method
    target: int
    # The instance's shape; an object keyed by column for raw rows (objects keyed by column).
    attributions: Any
    # Integrated gradients' completeness error: sum(attributions) - (f(x) - f(baseline)).
    convergence_delta: float | None


class ExplainResponse(BaseModel):
    predictions: list[Any]
    explanations: list[Explanation]


class FeatureImportance(BaseModel):
    name: str
    importance: float  # mean drop of the score (here: rise of the loss) when the column is shuffled
    std: float  # its spread over the repeats


class Importance(BaseModel):
    """Permutation importance, as the worker computed it after training."""

    metric: str
    split: Literal["test", "validation"]
    rows: int
    repeats: int
    features: list[FeatureImportance]


class NoImportance(BaseModel):
    """Stored instead when importance could not be computed: why (a 409 names it)."""

    reason: str
