"""The structure of Keras's model JSON (`model.to_json()`, `model.get_config()`) as typed models.

Only the parts trainyard reads are typed: the model body, its layers, their call nodes and the
tensor references in them. A layer's own `config` stays a mapping here: it is translated into
the layer catalog (app/ml/layers), whose strict types check every argument. Keys Keras writes
that are not read (`build_config`, `compile_config`, ...) are ignored; nothing in them is used.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NonNegative = Annotated[int, Field(ge=0, le=1_000_000)]
# [layer name, node index, tensor index]: which call of which layer made a tensor.
History = tuple[str, NonNegative, NonNegative]


class _Raw(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)


class RawTensorConfig(_Raw):
    keras_history: History
    shape: list[int | None] | None = None


class RawTensor(_Raw):
    """A `__keras_tensor__` reference to the output of an earlier call."""

    class_name: Literal["__keras_tensor__"]
    config: RawTensorConfig


# A positional call argument: a tensor, a list of tensors (merge layers), or a constant
# (what `x + 3.0` records). Anything else (strings, objects) is not a call argument Keras writes.
NodeArgument = RawTensor | Annotated[list[RawTensor], Field(max_length=64)] | float | None


class RawNodeKwargs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    training: bool | None = None
    mask: None = Field(default=None, description="Explicit masks are not supported.")
    value: RawTensor | None = None  # attention layers
    key: RawTensor | None = None


class RawNode(BaseModel):
    """One call of a layer: the tensors (and constants) it was called on."""

    model_config = ConfigDict(extra="forbid")

    args: list[NodeArgument] = Field(default_factory=list, max_length=64)
    kwargs: RawNodeKwargs = Field(default_factory=RawNodeKwargs)


class RawObject(_Raw):
    """Any serialized Keras object: a layer, an initializer, a dtype policy."""

    module: str = "keras"
    class_name: str
    config: dict[str, Any] = Field(default_factory=dict)
    registered_name: str | None = None


class RawLayer(RawObject):
    module: str = "keras.layers"
    config: dict[str, Any]
    name: str | None = None
    inbound_nodes: list[RawNode] = Field(default_factory=list, max_length=10_000)


# One reference (`["dense", 0, 0]`) or a list of them.
References = History | list[History]


class RawModelBody(_Raw):
    """The `config` of a Sequential or functional model."""

    name: str | None = None
    trainable: bool = True
    layers: list[RawLayer] = Field(min_length=1)
    input_layers: References | None = None
    output_layers: References | None = None
    build_input_shape: list[int | None] | None = None


class RawModel(_Raw):
    """The `to_json()` form: the model class around its body."""

    module: str = "keras"
    class_name: str
    config: RawModelBody


def references(value: References | None) -> list[tuple[str, int, int]]:
    if value is None:
        return []
    if isinstance(value, tuple):
        return [value]
    return list(value)
