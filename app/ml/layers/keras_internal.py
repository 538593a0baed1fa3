"""Keras classes that Keras's own model JSON uses but `keras.layers` does not export.

- `Operation`: a `keras.ops` function as a graph node. A functional model written with `x + y`,
  `x * 0.5` or `keras.ops.mean(x, axis=1)` holds these (MobileNetV3's hard-swish, ConvNeXt's
  residual adds). Each operation is named from a fixed table with typed arguments; its
  positional arguments are a template where `null` takes the next input node and a number is
  a constant, so `x + 3.0` is `{"op": "Add", "args": [null, 3.0], "inputs": ["x"]}`.
- `LayerScale` (ConvNeXt) and `CustomScaleLayer` (InceptionResNetV2): the two layer classes the
  `keras.applications` models define for themselves, with their typed arguments.
"""

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from app.ml.layers.base import LayerBase, PositiveInt

# Operation class → (module under keras.src.ops, the constructor arguments it takes).
OPERATIONS: dict[str, tuple[str, frozenset[str]]] = {
    **{name: ("numpy", frozenset()) for name in (
        "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power",
        "Negative", "Absolute", "Square", "Sqrt", "Exp", "Log", "Tanh",
    )},
    **{name: ("numpy", frozenset({"axis", "keepdims"})) for name in ("Mean", "Sum")},
    **{name: ("numpy", frozenset({"axis", "keepdims", "initial"})) for name in ("Max", "Min")},
    "Concatenate": ("numpy", frozenset({"axis"})),
    **{name: ("nn", frozenset()) for name in ("Relu", "Relu6", "Sigmoid", "HardSigmoid", "Silu")},
    "Softmax": ("nn", frozenset({"axis"})),
}  # fmt: skip
OperationName = Literal[
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power",
    "Negative", "Absolute", "Square", "Sqrt", "Exp", "Log", "Tanh", "Mean", "Sum", "Max", "Min",
    "Concatenate", "Relu", "Relu6", "Sigmoid", "HardSigmoid", "Silu", "Softmax",
]  # fmt: skip
# A finite constant, so NaN/Infinity (valid JSON tokens in some parsers) cannot reach a graph.
Constant = Annotated[float, Field(allow_inf_nan=False)]
# One positional argument: a constant, `null` (the next input node) or a list of `null`s (a list
# of input nodes, as Concatenate takes).
OperationArgument = Constant | None | Annotated[list[None], Field(min_length=1, max_length=64)]


class Operation(LayerBase):
    """A `keras.ops` function applied to input nodes and constants (from `+`, `*`, `keras.ops.*`)."""

    type: Literal["Operation"]
    op: OperationName
    args: list[OperationArgument] = Field(
        default_factory=lambda: list[OperationArgument]([None]),
        max_length=8,
        description="Positional arguments: null takes the next input node, a number is a constant.",
    )
    axis: int | list[int] | None = None
    keepdims: bool | None = None
    initial: Constant | None = None

    @model_validator(mode="after")
    def _arguments_of_this_op(self) -> "Operation":
        allowed = OPERATIONS[self.op][1]
        given = {k for k in ("axis", "keepdims", "initial") if getattr(self, k) is not None}
        if given - allowed:
            raise ValueError(f"{self.op} takes no argument {', '.join(sorted(given - allowed))}")
        if self.tensor_slots() == 0:
            raise ValueError("args: an operation needs at least one input node (a null in args)")
        return self

    def tensor_slots(self) -> int:
        """How many input nodes the argument template takes."""
        return sum(1 if a is None else len(a) if isinstance(a, list) else 0 for a in self.args)

    def keras_arguments(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in OPERATIONS[self.op][1] if getattr(self, k) is not None}


class LayerScale(LayerBase):
    """ConvNeXt's learned per-channel scale (keras.src.applications.convnext.LayerScale)."""

    type: Literal["LayerScale"]
    init_values: float = Field(allow_inf_nan=False)
    projection_dim: PositiveInt


class CustomScaleLayer(LayerBase):
    """InceptionResNetV2's residual merge: `inputs[0] + inputs[1] * scale`."""

    type: Literal["CustomScaleLayer"]
    scale: float = Field(allow_inf_nan=False)
