"""Small Keras objects a spec may name: activations, initializers, regularizers, constraints.

Each is a name from a fixed list or `{"type": <Keras class>, **arguments}`; nothing else. The
other names and serialized forms Keras takes for them are rewritten to these (keras_names.py).
"""

import functools
from typing import Annotated, Any, Literal, Self, cast, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from app.ml.keras_names import BY_NAME, BY_TYPE, Kind, by_type, class_aliases, did_you_mean, name_or_object


class SpecModel(BaseModel):
    """Base of every spec object: unknown keys are an error, never silently dropped; every number
    is finite (JSON parsers take `NaN` and `Infinity`), and `true` is not the number 1."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="wrap")
    @classmethod
    def _suggest_known_keys(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """An unknown key keeps its path and names the closest known ones ("did you mean 'units'?")."""
        if isinstance(data, dict):
            _refuse_booleans_for_numbers(cls, data)
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors()
            if not any(e["type"] == "extra_forbidden" and len(e["loc"]) == 1 for e in errors):
                raise
            owner = data.get("type") if isinstance(data, dict) and isinstance(data.get("type"), str) else None
            known = [name for name in cls.model_fields if name != "type"]
            details = [_with_suggestion(error, owner, known) for error in errors]
            raise ValidationError.from_exception_data(exc.title, details) from None

    def kwargs(self) -> dict[str, Any]:
        """Constructor arguments: every field but `type`, without unset optional values."""
        return self.model_dump(exclude={"type"}, exclude_none=True)


def _refuse_booleans_for_numbers(cls: type[BaseModel], data: dict[str, Any]) -> None:
    """pydantic's lax mode reads `true` as 1 (`fit.epochs: true` would train one epoch): a field
    that takes numbers and never a boolean refuses one, at its own path."""
    errors = [
        InitErrorDetails(
            type=PydanticCustomError("int_type", "Input should be a number, not true or false"),
            loc=(key,),
            input=data[key],
        )
        for name, info in cls.model_fields.items()
        if (key := info.alias or name) in data and _numbers_only(cast(Any, info.annotation)) and _holds_bool(data[key])
    ]
    if errors:
        raise ValidationError.from_exception_data(cls.__name__, errors)


@functools.cache
def _numbers_only(annotation: Any) -> bool:
    """Whether a field's type takes numbers (maybe in lists or dict values) but never a boolean;
    nested spec objects check their own fields."""
    found: set[str] = set()
    stack = [annotation]
    while stack:
        node = stack.pop()
        origin = get_origin(node)
        if node is bool:
            return False
        if node in (int, float):
            found.add("number")
        elif node is Any or (isinstance(node, type) and issubclass(node, BaseModel)):
            return False
        elif origin is Literal:
            if any(isinstance(value, bool) for value in get_args(node)):
                return False
        elif origin is not None or get_args(node):
            stack.extend(arg for arg in get_args(node) if not isinstance(arg, str | int | float))
    return bool(found)


def _holds_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, list | tuple):
        return any(_holds_bool(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_bool(item) for item in value.values())
    return False


def _with_suggestion(error: ErrorDetails, owner: str | None, known: list[str]) -> InitErrorDetails:
    message = error["msg"]
    if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
        key = str(error["loc"][0])
        hint = did_you_mean(key, known)
        message = f"{owner + ' has no argument' if owner else 'unknown field'} {key!r}" + (f"; {hint}" if hint else "")
    # The message is final: no context to format into it.
    return InitErrorDetails(type=PydanticCustomError(error["type"], message), loc=error["loc"], input=error["input"])


Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]

ActivationNames = Literal[
    "linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "tanh", "softmax", "log_softmax",
    "softplus", "softsign", "elu", "selu", "gelu", "swish", "silu", "leaky_relu", "mish",
    "exponential", "hard_silu", "hard_swish", "celu", "hard_shrink", "hard_tanh", "log_sigmoid",
    "soft_shrink", "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus", "tanh_shrink",
]  # fmt: skip
# Not here: "glu" halves the last axis (a Dense's units would not be its output width) and
# "threshold" needs arguments an activation name cannot carry.
# Keras takes activations by their function names only (keras.activations.get("ReLU") fails).
ACTIVATIONS = Kind("activation", "keras.activations", get_args(ActivationNames), {})
ActivationName = Annotated[ActivationNames, BeforeValidator(ACTIVATIONS.normalise)]

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
INITIALIZERS = Kind(
    "initializer",
    "keras.initializers",
    get_args(InitializerName),
    by_type(InitializerObject),
    aliases={
        **class_aliases(
            ["GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity", "LecunNormal",
             "LecunUniform", "Ones", "Orthogonal", "RandomNormal", "RandomUniform", "TruncatedNormal",
             "VarianceScaling", "Zeros"],
            get_args(InitializerName),
            by_type(InitializerObject),
        ),
        "IdentityInitializer": "identity", "OrthogonalInitializer": "orthogonal", "zero": "zeros",
        "one": "ones", "normal": "random_normal", "variance_scaling": {"type": "VarianceScaling"},
    },
    fixed={"input_axes": None, "output_axes": None},
)  # fmt: skip
Initializer = Annotated[
    Annotated[InitializerName, Tag(BY_NAME)] | Annotated[InitializerObject, Tag(BY_TYPE)],
    Discriminator(name_or_object),
    BeforeValidator(INITIALIZERS.normalise),
]

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
RegularizerName = Literal["l1", "l2", "l1_l2", "orthogonal_regularizer"]
REGULARIZERS = Kind(
    "regularizer",
    "keras.regularizers",
    get_args(RegularizerName),
    by_type(RegularizerObject),
    aliases={
        "L1": "l1",
        "L2": "l2",
        "L1L2": "l1_l2",
        "l1l2": "l1_l2",
        "OrthogonalRegularizer": "orthogonal_regularizer",
    },
)
Regularizer = Annotated[
    Annotated[RegularizerName, Tag(BY_NAME)] | Annotated[RegularizerObject, Tag(BY_TYPE)],
    Discriminator(name_or_object),
    BeforeValidator(REGULARIZERS.normalise),
]

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
ConstraintName = Literal["max_norm", "non_neg", "unit_norm", "min_max_norm"]
CONSTRAINTS = Kind(
    "constraint",
    "keras.constraints",
    get_args(ConstraintName),
    by_type(ConstraintObject),
    aliases=class_aliases(["MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"], get_args(ConstraintName), {}),
)
Constraint = Annotated[
    Annotated[ConstraintName, Tag(BY_NAME)] | Annotated[ConstraintObject, Tag(BY_TYPE)],
    Discriminator(name_or_object),
    BeforeValidator(CONSTRAINTS.normalise),
]

OBJECT_TAGS = frozenset(
    {
        "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal",
        "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal", "TruncatedNormal",
        "Orthogonal", "VarianceScaling", "Identity", "L1", "L2", "L1L2", "OrthogonalRegularizer",
        "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm",
    }
)  # fmt: skip
