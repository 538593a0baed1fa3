"""Core layers: dense, activations, embedding, dropout and noise, normalization, reshaping."""

from typing import Annotated, Any, Literal

from pydantic import Field

from app.ml.layers.base import (
    DataFormat,
    IntOrTuple,
    KernelLayer,
    LayerBase,
    PositiveInt,
    Rate,
)
from app.ml.objects import ActivationName, Constraint, Initializer, Regularizer, Seed

# --- core -----------------------------------------------------------------------------------


class Dense(KernelLayer):
    type: Literal["Dense"]
    units: PositiveInt
    # Textbook compatibility (`Dense(64, input_dim=100)`): only on the first layer.
    input_dim: PositiveInt | None = None
    input_shape: list[PositiveInt] | None = Field(default=None, min_length=1, max_length=4)


class Activation(LayerBase):
    type: Literal["Activation"]
    activation: ActivationName


class ReLU(LayerBase):
    type: Literal["ReLU"]
    max_value: float | None = Field(default=None, gt=0)
    negative_slope: float = Field(default=0.0, ge=0)
    threshold: float = 0.0


class LeakyReLU(LayerBase):
    type: Literal["LeakyReLU"]
    negative_slope: float = Field(default=0.3, ge=0)


class PReLU(LayerBase):
    type: Literal["PReLU"]
    shared_axes: list[int] | None = None
    alpha_initializer: Initializer = "zeros"
    alpha_regularizer: Regularizer | None = None
    alpha_constraint: Constraint | None = None


class ELU(LayerBase):
    type: Literal["ELU"]
    alpha: float = 1.0


class Softmax(LayerBase):
    type: Literal["Softmax"]
    axis: int = -1


class Embedding(LayerBase):
    type: Literal["Embedding"]
    input_dim: PositiveInt
    output_dim: PositiveInt
    embeddings_initializer: Initializer = "uniform"
    embeddings_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    embeddings_constraint: Constraint | None = None
    mask_zero: bool = False

    def kwargs(self) -> dict[str, Any]:
        # `input_dim` is Embedding's own argument here (the vocabulary size), not the textbook key.
        return {**super().kwargs(), "input_dim": self.input_dim}


# --- regularization -------------------------------------------------------------------------


class Dropout(LayerBase):
    type: Literal["Dropout"]
    rate: Rate
    noise_shape: list[PositiveInt | None] | None = None
    seed: Seed | None = None


class SpatialDropout1D(LayerBase):
    type: Literal["SpatialDropout1D"]
    rate: Rate
    seed: Seed | None = None


class SpatialDropout2D(SpatialDropout1D):
    type: Literal["SpatialDropout2D"]  # type: ignore[assignment]
    data_format: DataFormat | None = None


class SpatialDropout3D(SpatialDropout2D):
    type: Literal["SpatialDropout3D"]  # type: ignore[assignment]


class GaussianNoise(LayerBase):
    type: Literal["GaussianNoise"]
    stddev: float = Field(ge=0)
    seed: Seed | None = None


# --- normalization --------------------------------------------------------------------------


class _Normalization(LayerBase):
    axis: int | list[int] = -1
    epsilon: float = Field(default=0.001, gt=0)
    center: bool = True
    scale: bool = True
    beta_initializer: Initializer = "zeros"
    gamma_initializer: Initializer = "ones"
    beta_regularizer: Regularizer | None = None
    gamma_regularizer: Regularizer | None = None
    beta_constraint: Constraint | None = None
    gamma_constraint: Constraint | None = None


class BatchNormalization(_Normalization):
    type: Literal["BatchNormalization"]
    momentum: float = Field(default=0.99, gt=0, lt=1)
    moving_mean_initializer: Initializer = "zeros"
    moving_variance_initializer: Initializer = "ones"


class LayerNormalization(_Normalization):
    type: Literal["LayerNormalization"]


class GroupNormalization(_Normalization):
    type: Literal["GroupNormalization"]
    groups: PositiveInt = 32


# --- reshaping ------------------------------------------------------------------------------


class UnitNormalization(LayerBase):
    type: Literal["UnitNormalization"]
    axis: int | list[int] = -1


class Masking(LayerBase):
    """Marks timesteps whose every feature equals `mask_value`; later layers skip them."""

    type: Literal["Masking"]
    mask_value: float = 0.0


class Identity(LayerBase):
    """Passes its input through unchanged (a named node in a graph)."""

    type: Literal["Identity"]


class Flatten(LayerBase):
    type: Literal["Flatten"]
    data_format: DataFormat | None = None


class Reshape(LayerBase):
    type: Literal["Reshape"]
    target_shape: list[Annotated[int, Field(ge=-1, le=1_000_000)]] = Field(min_length=1, max_length=5)


class Permute(LayerBase):
    type: Literal["Permute"]
    dims: list[PositiveInt] = Field(min_length=1, max_length=5)


class RepeatVector(LayerBase):
    type: Literal["RepeatVector"]
    n: PositiveInt


class UpSampling1D(LayerBase):
    type: Literal["UpSampling1D"]
    size: PositiveInt = 2


class UpSampling2D(LayerBase):
    type: Literal["UpSampling2D"]
    size: IntOrTuple = 2
    data_format: DataFormat | None = None
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos3", "lanczos5"] = "nearest"


class UpSampling3D(LayerBase):
    type: Literal["UpSampling3D"]
    size: IntOrTuple = 2
    data_format: DataFormat | None = None


class ZeroPadding1D(LayerBase):
    type: Literal["ZeroPadding1D"]
    padding: int | list[int] = 1
    data_format: DataFormat | None = None


class ZeroPadding2D(LayerBase):
    type: Literal["ZeroPadding2D"]
    padding: int | list[int] | list[list[int]] = 1
    data_format: DataFormat | None = None


class ZeroPadding3D(ZeroPadding2D):
    type: Literal["ZeroPadding3D"]  # type: ignore[assignment]


class Cropping1D(LayerBase):
    type: Literal["Cropping1D"]
    cropping: int | list[int] = 1


class Cropping2D(LayerBase):
    type: Literal["Cropping2D"]
    cropping: int | list[int] | list[list[int]] = 0
    data_format: DataFormat | None = None


class Cropping3D(Cropping2D):
    type: Literal["Cropping3D"]  # type: ignore[assignment]
