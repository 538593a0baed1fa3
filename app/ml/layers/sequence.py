"""Recurrent and attention layers, and the layers that merge several inputs."""

from typing import Annotated, Literal

from pydantic import Field

from app.ml.layers.base import (
    KernelArguments,
    KernelLayer,
    LayerBase,
    PositiveInt,
    Rate,
)
from app.ml.objects import ActivationName, Constraint, Initializer, Regularizer, Seed

# --- recurrent and attention ----------------------------------------------------------------


class _Recurrent(KernelLayer):
    units: PositiveInt
    activation: ActivationName | None = "tanh"
    recurrent_initializer: Initializer = "orthogonal"
    recurrent_regularizer: Regularizer | None = None
    recurrent_constraint: Constraint | None = None
    dropout: Rate = 0.0
    recurrent_dropout: Rate = 0.0
    seed: Seed | None = None
    return_sequences: bool = False
    go_backwards: bool = False
    unroll: bool = False
    # return_state and stateful are left out: they change what the layer returns or keep state
    # across batches, which a training job cannot use.


class SimpleRNN(_Recurrent):
    type: Literal["SimpleRNN"]


class LSTM(_Recurrent):
    type: Literal["LSTM"]
    recurrent_activation: ActivationName = "sigmoid"
    unit_forget_bias: bool = True


class GRU(_Recurrent):
    type: Literal["GRU"]
    recurrent_activation: ActivationName = "sigmoid"
    reset_after: bool = True


RecurrentLayer = Annotated[SimpleRNN | LSTM | GRU, Field(discriminator="type")]


class MultiHeadAttention(KernelArguments):
    """Self-attention in a stack; in a graph, `inputs` are [query, value] or [query, value, key]."""

    type: Literal["MultiHeadAttention"]
    num_heads: PositiveInt
    key_dim: PositiveInt
    value_dim: PositiveInt | None = None
    dropout: Rate = 0.0
    output_shape: list[PositiveInt] | None = None
    attention_axes: list[int] | None = None
    seed: Seed | None = None


class Attention(LayerBase):
    """Dot-product attention; `inputs` are [query, value] or [query, value, key]."""

    type: Literal["Attention"]
    use_scale: bool = False
    score_mode: Literal["dot", "concat"] = "dot"
    dropout: Rate = 0.0
    seed: Seed | None = None


# --- merging --------------------------------------------------------------------------------


class Add(LayerBase):
    type: Literal["Add"]


class Subtract(LayerBase):
    type: Literal["Subtract"]


class Multiply(LayerBase):
    type: Literal["Multiply"]


class Average(LayerBase):
    type: Literal["Average"]


class Maximum(LayerBase):
    type: Literal["Maximum"]


class Minimum(LayerBase):
    type: Literal["Minimum"]


class Concatenate(LayerBase):
    type: Literal["Concatenate"]
    axis: int = -1


class Dot(LayerBase):
    type: Literal["Dot"]
    axes: int | list[int]
    normalize: bool = False
