"""Small Keras objects a spec may name: activations, initializers, regularizers, constraints.

Each is a name from a fixed list or `{"type": <Keras class>, **arguments}`; nothing else.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SpecModel(BaseModel):
    """Base of every spec object: unknown keys are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")

    def kwargs(self) -> dict[str, Any]:
        """Constructor arguments: every field but `type`, without unset optional values."""
        return self.model_dump(exclude={"type"}, exclude_none=True)


Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]

ActivationName = Literal[
    "linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "tanh", "softmax", "log_softmax",
    "softplus", "softsign", "elu", "selu", "gelu", "swish", "silu", "leaky_relu", "mish",
    "exponential", "hard_silu", "hard_swish",
]  # fmt: skip

# --- initializers -----------------------------------------------------------------------------

InitializerName = Literal[
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "zeros", "ones", "random_uniform", "random_normal", "truncated_normal",
    "orthogonal", "identity", "uniform",
]  # fmt: skip


class _SeededInitializer(SpecModel):
    seed: Seed | None = None


class GlorotUniform(_SeededInitializer):
    type: Literal["GlorotUniform"]


class GlorotNormal(_SeededInitializer):
    type: Literal["GlorotNormal"]


class HeUniform(_SeededInitializer):
    type: Literal["HeUniform"]


class HeNormal(_SeededInitializer):
    type: Literal["HeNormal"]


class LecunUniform(_SeededInitializer):
    type: Literal["LecunUniform"]


class LecunNormal(_SeededInitializer):
    type: Literal["LecunNormal"]


class Zeros(SpecModel):
    type: Literal["Zeros"]


class Ones(SpecModel):
    type: Literal["Ones"]


class Constant(SpecModel):
    type: Literal["Constant"]
    value: float = 0.0


class RandomUniform(_SeededInitializer):
    type: Literal["RandomUniform"]
    minval: float = -0.05
    maxval: float = 0.05


class RandomNormal(_SeededInitializer):
    type: Literal["RandomNormal"]
    mean: float = 0.0
    stddev: float = Field(default=0.05, gt=0)


class TruncatedNormal(_SeededInitializer):
    type: Literal["TruncatedNormal"]
    mean: float = 0.0
    stddev: float = Field(default=0.05, gt=0)


class Orthogonal(_SeededInitializer):
    type: Literal["Orthogonal"]
    gain: float = 1.0


class VarianceScaling(_SeededInitializer):
    type: Literal["VarianceScaling"]
    scale: float = Field(default=1.0, gt=0)
    mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_in"
    distribution: Literal["truncated_normal", "untruncated_normal", "uniform"] = "truncated_normal"


class Identity(SpecModel):
    type: Literal["Identity"]
    gain: float = 1.0


InitializerObject = Annotated[
    GlorotUniform | GlorotNormal | HeUniform | HeNormal | LecunUniform | LecunNormal | Zeros
    | Ones | Constant | RandomUniform | RandomNormal | TruncatedNormal | Orthogonal
    | VarianceScaling | Identity,
    Field(discriminator="type"),
]  # fmt: skip
Initializer = InitializerName | InitializerObject

# --- regularizers -----------------------------------------------------------------------------


class L1(SpecModel):
    type: Literal["L1"]
    l1: float = Field(default=0.01, ge=0)


class L2(SpecModel):
    type: Literal["L2"]
    l2: float = Field(default=0.01, ge=0)


class L1L2(SpecModel):
    type: Literal["L1L2"]
    l1: float = Field(default=0.0, ge=0)
    l2: float = Field(default=0.0, ge=0)


class OrthogonalRegularizer(SpecModel):
    type: Literal["OrthogonalRegularizer"]
    factor: float = Field(default=0.01, ge=0)
    mode: Literal["rows", "columns"] = "rows"


RegularizerObject = Annotated[L1 | L2 | L1L2 | OrthogonalRegularizer, Field(discriminator="type")]
Regularizer = Literal["l1", "l2", "l1_l2", "orthogonal_regularizer"] | RegularizerObject

# --- constraints ------------------------------------------------------------------------------


class MaxNorm(SpecModel):
    type: Literal["MaxNorm"]
    max_value: float = Field(default=2.0, gt=0)
    axis: int | list[int] = 0


class NonNeg(SpecModel):
    type: Literal["NonNeg"]


class UnitNorm(SpecModel):
    type: Literal["UnitNorm"]
    axis: int | list[int] = 0


class MinMaxNorm(SpecModel):
    type: Literal["MinMaxNorm"]
    min_value: float = Field(default=0.0, ge=0)
    max_value: float = Field(default=1.0, gt=0)
    rate: float = Field(default=1.0, ge=0, le=1)
    axis: int | list[int] = 0


ConstraintObject = Annotated[MaxNorm | NonNeg | UnitNorm | MinMaxNorm, Field(discriminator="type")]
Constraint = Literal["max_norm", "non_neg", "unit_norm", "min_max_norm"] | ConstraintObject

OBJECT_TAGS = frozenset(
    {
        "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal",
        "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal", "TruncatedNormal",
        "Orthogonal", "VarianceScaling", "Identity", "L1", "L2", "L1L2", "OrthogonalRegularizer",
        "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm",
    }
)  # fmt: skip
