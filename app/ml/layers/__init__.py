"""The layer catalog: each Keras layer a spec may use, with its real constructor arguments.

A layer is `{"type": <class name>, **arguments}`. In a functional graph a layer also names the
nodes it is called on (`inputs`). Wrappers (`Bidirectional`, `TimeDistributed`) take a nested
layer spec. Arguments that could read files or run code (Lambda, lookup vocabularies from
paths, custom objects) have no field here, so they cannot be written.
"""

from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import Field

from app.ml.layers import convolution, core, preprocessing, sequence
from app.ml.layers.base import NON_KERAS_FIELDS, LayerBase, LayerName
from app.ml.layers.core import Dense
from app.ml.layers.sequence import RecurrentLayer

__all__ = [
    "ATTENTION_LAYERS",
    "LAYER_CLASSES",
    "MERGE_LAYERS",
    "NON_KERAS_FIELDS",
    "Call",
    "Dense",
    "Layer",
    "LayerBase",
    "LayerName",
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


def _catalog_classes() -> list[type[LayerBase]]:
    """Every public layer class defined in the catalog modules, in module order."""
    found: list[type[LayerBase]] = []
    for module in (core, convolution, sequence, preprocessing):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, LayerBase)
                and value.__module__ == module.__name__
                and not value.__name__.startswith("_")
            ):
                found.append(value)
    return [*found, Bidirectional, TimeDistributed, Call]


if TYPE_CHECKING:
    Layer = LayerBase
else:
    # One discriminated union of every catalog class: `type` picks the class, nothing else can.
    Layer = Annotated[Union[tuple(_catalog_classes())], Field(discriminator="type")]  # noqa: UP007
    TimeDistributed.model_rebuild()

LAYER_CLASSES: dict[str, type[LayerBase]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in _catalog_classes()
}
MERGE_LAYERS = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot"})
ATTENTION_LAYERS = frozenset({"MultiHeadAttention", "Attention"})
