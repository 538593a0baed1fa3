"""Preprocessing and augmentation layers that need no files."""

from typing import Literal

from pydantic import Field

from app.ml.layers.base import (
    DataFormat,
    FillMode,
    Interpolation,
    LayerBase,
    PositiveInt,
)
from app.ml.objects import Seed

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


class _GeometricAugmentation(LayerBase):
    """Arguments shared by the augmentations that move pixels and fill the gaps."""

    data_format: DataFormat | None = None
    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = "bilinear"
    seed: Seed | None = None
    fill_value: float = 0.0


class RandomRotation(_GeometricAugmentation):
    type: Literal["RandomRotation"]
    factor: float | list[float]


class RandomZoom(_GeometricAugmentation):
    type: Literal["RandomZoom"]
    height_factor: float | list[float]
    width_factor: float | list[float] | None = None


class RandomTranslation(_GeometricAugmentation):
    type: Literal["RandomTranslation"]
    height_factor: float | list[float]
    width_factor: float | list[float]


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


# --- categorical encodings (no vocabularies, so no files) -----------------------------------


class CategoryEncoding(LayerBase):
    """Integer codes (0 to num_tokens - 1) → one-hot, multi-hot or count vectors."""

    type: Literal["CategoryEncoding"]
    num_tokens: PositiveInt
    output_mode: Literal["one_hot", "multi_hot", "count"] = "multi_hot"


class Hashing(LayerBase):
    """Values → one of `num_bins` bins by a hash (numbers are hashed as their string form)."""

    type: Literal["Hashing"]
    num_bins: PositiveInt
    mask_value: int | str | None = None
    salt: int | list[int] | None = None
    output_mode: Literal["int", "one_hot", "multi_hot", "count"] = "int"


class Discretization(LayerBase):
    """Numbers → bucket indices: fixed `bin_boundaries`, or `num_bins` adapted to the training rows."""

    type: Literal["Discretization"]
    bin_boundaries: list[float] | None = Field(default=None, min_length=1, max_length=10_000)
    num_bins: PositiveInt | None = None
    epsilon: float = Field(default=0.01, gt=0, lt=1)
    output_mode: Literal["int", "one_hot", "multi_hot", "count"] = "int"
