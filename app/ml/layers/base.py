"""Shared pieces of the layer catalog: the base class, argument types, weighted-layer arguments."""

from typing import Annotated, Any, Literal

from pydantic import Field

from app.ml.objects import ActivationName, Constraint, Initializer, Regularizer, SpecModel

LayerName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
PositiveInt = Annotated[int, Field(gt=0, le=1_000_000)]
Shape = Annotated[list[PositiveInt], Field(min_length=1, max_length=5)]
# A bound on any one list of layers, so parsing stays bounded; the layer cap users meet is the
# TRAINYARD_MAX_LAYERS setting, checked on the whole spec (nested models included) at the door.
LAYERS_CEILING = 100_000
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]
IntOrTuple = PositiveInt | list[PositiveInt]
Padding = Literal["valid", "same"]
DataFormat = Literal["channels_last", "channels_first"]
FillMode = Literal["reflect", "wrap", "constant", "nearest"]
Interpolation = Literal["nearest", "bilinear"]

# Graph and textbook keys that are not constructor arguments.
NON_KERAS_FIELDS = frozenset({"type", "inputs", "input_dim", "input_shape"})


class LayerBase(SpecModel):
    type: str  # each layer class narrows it to its own Literal
    name: LayerName | None = None
    trainable: bool = True
    inputs: list[LayerName] | None = Field(
        default=None,
        min_length=1,
        description="Functional graphs: the nodes this layer is called on.",
    )

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude=set(NON_KERAS_FIELDS), exclude_none=True)


class KernelArguments(LayerBase):
    """Arguments of layers with a kernel and a bias: initializers, regularizers, constraints."""

    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None


class KernelLayer(KernelArguments):
    """A kernel layer with an activation (Dense, convolutions, recurrent layers)."""

    activation: ActivationName | None = None
