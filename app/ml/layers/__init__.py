"""The layer catalog: each Keras layer a spec may use, with its real constructor arguments.

A layer is `{"type": <class name>, **arguments}`. In a functional graph a layer also names the
nodes it is called on (`inputs`). Wrappers (`Bidirectional`, `TimeDistributed`) take a nested
layer spec. Arguments that could read files or run code (Lambda, lookup vocabularies from
paths, custom objects) have no field here, so they cannot be written.
"""

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field

from app.ml.keras_names import unknown
from app.ml.layers import convolution, core, keras_internal, preprocessing, sequence
from app.ml.layers.base import LAYERS_CEILING, NON_KERAS_FIELDS, LayerBase, LayerName, Shape
from app.ml.layers.core import Dense
from app.ml.layers.sequence import RecurrentLayer
from app.ml.objects import SpecModel

__all__ = [
    "ATTENTION_LAYERS",
    "LAYERS_CEILING",
    "LAYER_CLASSES",
    "MERGE_LAYERS",
    "NON_KERAS_FIELDS",
    "Call",
    "Dense",
    "Layer",
    "LayerBase",
    "LayerName",
    "NestedModel",
]


# --- wrappers -------------------------------------------------------------------------------


class Bidirectional(LayerBase):
    type: Literal["Bidirectional"]
    layer: RecurrentLayer
    merge_mode: Literal["sum", "mul", "concat", "ave"] | None = "concat"


class TimeDistributed(LayerBase):
    type: Literal["TimeDistributed"]
    layer: "Layer"


class Call(LayerBase):
    """Call a layer defined earlier in the graph again, sharing its weights."""

    type: Literal["Call"]
    layer: LayerName


class NestedInput(SpecModel):
    name: LayerName
    shape: Shape | None = Field(default=None, description="Per-sample shape; default: the node it is called on.")


class NestedGraph(SpecModel):
    """The graph of a model used as a layer: its own names, inputs, layers and outputs."""

    inputs: list[NestedInput] = Field(min_length=1, max_length=16)
    layers: list["Layer"] = Field(min_length=1, max_length=LAYERS_CEILING)
    outputs: list[LayerName] = Field(min_length=1, max_length=16)


class NestedModel(LayerBase):
    """A model called as a layer, such as a base model inside a transfer-learning model
    (`trainable: false` freezes all of it)."""

    type: Literal["Model"]
    graph: NestedGraph


def _catalog_classes() -> list[type[LayerBase]]:
    """Every public layer class defined in the catalog modules, in module order."""
    found: list[type[LayerBase]] = []
    for module in (core, convolution, sequence, preprocessing, keras_internal):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, LayerBase)
                and value.__module__ == module.__name__
                and not value.__name__.startswith("_")
            ):
                found.append(value)
    return [*found, Bidirectional, TimeDistributed, Call, NestedModel]


def _known_type(value: Any) -> Any:
    """An unknown `type` is named with the closest catalog classes, not the whole catalog."""
    if isinstance(value, dict):
        kind = value.get("type")
        if kind is None:
            raise ValueError('each layer needs a "type", the Keras class name, such as "Dense"')
        if not isinstance(kind, str) or kind not in LAYER_CLASSES:
            raise ValueError(unknown("layer type", str(kind), LAYER_CLASSES))
    return value


if TYPE_CHECKING:
    Layer = LayerBase
else:
    # One discriminated union of every catalog class: `type` picks the class, nothing else can.
    _ANY_LAYER = Union[tuple(_catalog_classes())]  # noqa: UP007
    Layer = Annotated[_ANY_LAYER, Field(discriminator="type"), BeforeValidator(_known_type)]
    TimeDistributed.model_rebuild()
    NestedGraph.model_rebuild()

LAYER_CLASSES: dict[str, type[LayerBase]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in _catalog_classes()
}
MERGE_LAYERS = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot"})
ATTENTION_LAYERS = frozenset({"MultiHeadAttention", "Attention"})
