"""The layer catalog: each Keras layer a spec may use, with its real constructor arguments.

A layer is `{"type": <class name>, **arguments}`. In a functional graph a layer also names the
nodes it is called on (`inputs`). Wrappers (`Bidirectional`, `TimeDistributed`) take a nested
layer spec. Arguments that could read files or run code (Lambda, lookup vocabularies from
paths, custom objects) have no field here, so they cannot be written.
"""

from typing import Annotated, Any, Literal, Union

from pydantic import Field

from app.ml.objects import ActivationName, Constraint, Initializer, Regularizer, Seed, SpecModel

LayerName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
PositiveInt = Annotated[int, Field(gt=0, le=1_000_000)]
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


class _Weighted(LayerBase):
    activation: ActivationName | None = None
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None


# --- core -----------------------------------------------------------------------------------


class Dense(_Weighted):
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


# --- convolution ----------------------------------------------------------------------------


class _Conv(_Weighted):
    filters: PositiveInt
    kernel_size: IntOrTuple
    strides: IntOrTuple = 1
    padding: Padding = "valid"
    data_format: DataFormat | None = None
    dilation_rate: IntOrTuple = 1
    groups: PositiveInt = 1


class Conv1D(_Conv):
    type: Literal["Conv1D"]
    padding: Literal["valid", "same", "causal"] = "valid"  # type: ignore[assignment]


class Conv2D(_Conv):
    type: Literal["Conv2D"]


class Conv3D(_Conv):
    type: Literal["Conv3D"]


class Conv2DTranspose(_Weighted):
    type: Literal["Conv2DTranspose"]
    filters: PositiveInt
    kernel_size: IntOrTuple
    strides: IntOrTuple = 1
    padding: Padding = "valid"
    output_padding: IntOrTuple | None = None
    data_format: DataFormat | None = None
    dilation_rate: IntOrTuple = 1


class _Depthwise(LayerBase):
    kernel_size: IntOrTuple
    strides: IntOrTuple = 1
    padding: Padding = "valid"
    depth_multiplier: PositiveInt = 1
    data_format: DataFormat | None = None
    dilation_rate: IntOrTuple = 1
    activation: ActivationName | None = None
    use_bias: bool = True
    depthwise_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    depthwise_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    depthwise_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None


class DepthwiseConv2D(_Depthwise):
    type: Literal["DepthwiseConv2D"]


class SeparableConv2D(_Depthwise):
    type: Literal["SeparableConv2D"]
    filters: PositiveInt
    pointwise_initializer: Initializer = "glorot_uniform"
    pointwise_regularizer: Regularizer | None = None
    pointwise_constraint: Constraint | None = None


# --- pooling --------------------------------------------------------------------------------


class _Pooling(LayerBase):
    pool_size: IntOrTuple = 2
    strides: IntOrTuple | None = None
    padding: Padding = "valid"
    data_format: DataFormat | None = None


class MaxPooling1D(_Pooling):
    type: Literal["MaxPooling1D"]


class MaxPooling2D(_Pooling):
    type: Literal["MaxPooling2D"]


class MaxPooling3D(_Pooling):
    type: Literal["MaxPooling3D"]


class AveragePooling1D(_Pooling):
    type: Literal["AveragePooling1D"]


class AveragePooling2D(_Pooling):
    type: Literal["AveragePooling2D"]


class AveragePooling3D(_Pooling):
    type: Literal["AveragePooling3D"]


class _GlobalPooling(LayerBase):
    data_format: DataFormat | None = None
    keepdims: bool = False


class GlobalMaxPooling1D(_GlobalPooling):
    type: Literal["GlobalMaxPooling1D"]


class GlobalMaxPooling2D(_GlobalPooling):
    type: Literal["GlobalMaxPooling2D"]


class GlobalMaxPooling3D(_GlobalPooling):
    type: Literal["GlobalMaxPooling3D"]


class GlobalAveragePooling1D(_GlobalPooling):
    type: Literal["GlobalAveragePooling1D"]


class GlobalAveragePooling2D(_GlobalPooling):
    type: Literal["GlobalAveragePooling2D"]


class GlobalAveragePooling3D(_GlobalPooling):
    type: Literal["GlobalAveragePooling3D"]


# --- recurrent and attention ----------------------------------------------------------------


class _Recurrent(LayerBase):
    units: PositiveInt
    activation: ActivationName | None = "tanh"
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    recurrent_initializer: Initializer = "orthogonal"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer | None = None
    recurrent_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    recurrent_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None
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


class MultiHeadAttention(LayerBase):
    """Self-attention in a stack; in a graph, `inputs` are [query, value] or [query, value, key]."""

    type: Literal["MultiHeadAttention"]
    num_heads: PositiveInt
    key_dim: PositiveInt
    value_dim: PositiveInt | None = None
    dropout: Rate = 0.0
    use_bias: bool = True
    output_shape: list[PositiveInt] | None = None
    attention_axes: list[int] | None = None
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None
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


# --- preprocessing and augmentation (no files) ----------------------------------------------


class Rescaling(LayerBase):
    type: Literal["Rescaling"]
    scale: float
    offset: float = 0.0


class Normalization(LayerBase):
    """Without `mean`/`variance` it is adapted to the training features before fitting."""

    type: Literal["Normalization"]
    axis: int | list[int] | None = -1
    mean: float | list[float] | None = None
    variance: float | list[float] | None = None
    invert: bool = False


class CenterCrop(LayerBase):
    type: Literal["CenterCrop"]
    height: PositiveInt
    width: PositiveInt
    data_format: DataFormat | None = None


class Resizing(LayerBase):
    type: Literal["Resizing"]
    height: PositiveInt
    width: PositiveInt
    interpolation: Literal["bilinear", "nearest", "bicubic", "lanczos3", "lanczos5", "area"] = "bilinear"
    crop_to_aspect_ratio: bool = False
    pad_to_aspect_ratio: bool = False
    fill_mode: Literal["constant"] = "constant"
    fill_value: float = 0.0
    data_format: DataFormat | None = None


class RandomFlip(LayerBase):
    type: Literal["RandomFlip"]
    data_format: DataFormat | None = None
    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal_and_vertical"
    seed: Seed | None = None


class RandomRotation(LayerBase):
    type: Literal["RandomRotation"]
    data_format: DataFormat | None = None
    factor: float | list[float]
    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = "bilinear"
    seed: Seed | None = None
    fill_value: float = 0.0


class RandomZoom(LayerBase):
    type: Literal["RandomZoom"]
    data_format: DataFormat | None = None
    height_factor: float | list[float]
    width_factor: float | list[float] | None = None
    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = "bilinear"
    seed: Seed | None = None
    fill_value: float = 0.0


class RandomTranslation(LayerBase):
    type: Literal["RandomTranslation"]
    data_format: DataFormat | None = None
    height_factor: float | list[float]
    width_factor: float | list[float]
    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = "bilinear"
    seed: Seed | None = None
    fill_value: float = 0.0


class RandomCrop(LayerBase):
    type: Literal["RandomCrop"]
    data_format: DataFormat | None = None
    height: PositiveInt
    width: PositiveInt
    seed: Seed | None = None


class RandomContrast(LayerBase):
    type: Literal["RandomContrast"]
    data_format: DataFormat | None = None
    factor: float | list[float]
    value_range: list[float] = Field(default=[0.0, 255.0], min_length=2, max_length=2)
    seed: Seed | None = None


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


Layer = Annotated[
    Union[  # noqa: UP007  (a forward reference from TimeDistributed needs the Union form)
        Dense, Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax, Embedding, Dropout,
        SpatialDropout1D, SpatialDropout2D, SpatialDropout3D, GaussianNoise,
        BatchNormalization, LayerNormalization, GroupNormalization, Flatten, Reshape, Permute,
        RepeatVector, UpSampling1D, UpSampling2D, UpSampling3D, ZeroPadding1D, ZeroPadding2D,
        ZeroPadding3D, Cropping1D, Cropping2D, Cropping3D, Conv1D, Conv2D, Conv3D,
        Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, MaxPooling1D, MaxPooling2D,
        MaxPooling3D, AveragePooling1D, AveragePooling2D, AveragePooling3D, GlobalMaxPooling1D,
        GlobalMaxPooling2D, GlobalMaxPooling3D, GlobalAveragePooling1D, GlobalAveragePooling2D,
        GlobalAveragePooling3D, SimpleRNN, LSTM, GRU, MultiHeadAttention, Attention, Add,
        Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot, Rescaling,
        Normalization, CenterCrop, Resizing, RandomFlip, RandomRotation, RandomZoom,
        RandomTranslation, RandomCrop, RandomContrast, Bidirectional, TimeDistributed, Call,
    ],
    Field(discriminator="type"),
]  # fmt: skip
TimeDistributed.model_rebuild()

LAYER_CLASSES: dict[str, type[LayerBase]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in Layer.__origin__.__args__  # type: ignore[attr-defined]
}
MERGE_LAYERS = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot"})
ATTENTION_LAYERS = frozenset({"MultiHeadAttention", "Attention"})
