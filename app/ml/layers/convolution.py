"""Convolution and pooling layers, 1D to 3D."""

from typing import Literal

from app.ml.layers.base import (
    DataFormat,
    IntOrTuple,
    KernelLayer,
    LayerBase,
    Padding,
    PositiveInt,
)
from app.ml.objects import ActivationName, Constraint, Initializer, Regularizer

# --- convolution ----------------------------------------------------------------------------


class _Conv(KernelLayer):
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


class _ConvTranspose(KernelLayer):
    filters: PositiveInt
    kernel_size: IntOrTuple
    strides: IntOrTuple = 1
    padding: Padding = "valid"
    output_padding: IntOrTuple | None = None
    data_format: DataFormat | None = None
    dilation_rate: IntOrTuple = 1


class Conv2DTranspose(_ConvTranspose):
    type: Literal["Conv2DTranspose"]


class Conv1DTranspose(_ConvTranspose):
    type: Literal["Conv1DTranspose"]


class Conv3DTranspose(_ConvTranspose):
    type: Literal["Conv3DTranspose"]


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
