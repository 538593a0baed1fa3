"""The job spec as data: pydantic models over an allowlist of Keras classes. No Keras import here.

Every class name a user may write is a `Literal`, every argument a typed field, and unknown
arguments are rejected (`extra="forbid"`), so nothing in a spec can name code or files.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ActivationName = Literal[
    "linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "tanh", "softmax", "log_softmax",
    "softplus", "softsign", "elu", "selu", "gelu", "swish", "silu", "leaky_relu", "mish",
    "exponential",
]  # fmt: skip
InitializerName = Literal[
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "zeros", "ones", "random_uniform", "random_normal", "truncated_normal",
    "orthogonal",
]  # fmt: skip
LossName = Literal[
    "mean_squared_error", "mse", "mean_absolute_error", "mae", "mean_absolute_percentage_error",
    "huber", "log_cosh", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "kl_divergence", "hinge", "squared_hinge", "poisson",
]  # fmt: skip
MetricName = Literal[
    "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "mse", "mae",
    "mean_squared_error", "mean_absolute_error", "root_mean_squared_error", "auc", "precision",
    "recall",
]  # fmt: skip
OptimizerName = Literal[
    "sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "lion"
]

PositiveInt = Annotated[int, Field(gt=0)]
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]


class SpecModel(BaseModel):
    """Base of every spec object: unknown keys are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


# --- regularizers -------------------------------------------------------------------------


class L1(SpecModel):
    type: Literal["L1"]
    l1: float = Field(default=0.01, ge=0)


class L2(SpecModel):
    type: Literal["L2"]
    l2: float = Field(default=0.01, ge=0)


class L1L2(SpecModel):
    type: Literal["L1L2"]
    l1: float = Field(default=0.0, ge=0)
    l2: float = Field(default=0.0, ge=0)


Regularizer = Literal["l1", "l2", "l1_l2"] | Annotated[L1 | L2 | L1L2, Field(discriminator="type")]


# --- layers --------------------------------------------------------------------------------


class LayerBase(SpecModel):
    name: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class Dense(LayerBase):
    type: Literal["Dense"]
    units: PositiveInt = Field(le=1_000_000)
    activation: ActivationName | None = None
    use_bias: bool = True
    kernel_initializer: InitializerName = "glorot_uniform"
    bias_initializer: InitializerName = "zeros"
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    # Accepted for textbook compatibility (`Dense(64, input_dim=100)`); only on the first layer.
    input_dim: PositiveInt | None = None
    input_shape: list[PositiveInt] | None = Field(default=None, min_length=1, max_length=4)


class Activation(LayerBase):
    type: Literal["Activation"]
    activation: ActivationName


class Dropout(LayerBase):
    type: Literal["Dropout"]
    rate: Rate
    seed: int | None = None


class Flatten(LayerBase):
    type: Literal["Flatten"]


class BatchNormalization(LayerBase):
    type: Literal["BatchNormalization"]
    axis: int = -1
    momentum: float = Field(default=0.99, gt=0, lt=1)
    epsilon: float = Field(default=0.001, gt=0)
    center: bool = True
    scale: bool = True


LayerSpec = Dense | Activation | Dropout | Flatten | BatchNormalization
Layer = Annotated[LayerSpec, Field(discriminator="type")]
LAYER_TYPES = ("Dense", "Activation", "Dropout", "Flatten", "BatchNormalization")


class SequentialModel(SpecModel):
    """A stack of layers; the input shape comes from the dataset unless given."""

    layers: list[Layer] = Field(min_length=1, max_length=200)
    input_shape: list[PositiveInt] | None = Field(default=None, min_length=1, max_length=4)


# --- optimizers ------------------------------------------------------------------------------


class OptimizerBase(SpecModel):
    learning_rate: float = Field(default=0.001, gt=0, le=10)
    clipnorm: float | None = Field(default=None, gt=0)
    clipvalue: float | None = Field(default=None, gt=0)
    global_clipnorm: float | None = Field(default=None, gt=0)


class SGD(OptimizerBase):
    type: Literal["SGD"]
    learning_rate: float = Field(default=0.01, gt=0, le=10)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    nesterov: bool = False


class Adam(OptimizerBase):
    type: Literal["Adam"]
    beta_1: float = Field(default=0.9, ge=0, lt=1)
    beta_2: float = Field(default=0.999, ge=0, lt=1)
    epsilon: float = Field(default=1e-7, gt=0)
    amsgrad: bool = False


class AdamW(OptimizerBase):
    type: Literal["AdamW"]
    weight_decay: float = Field(default=0.004, ge=0)
    beta_1: float = Field(default=0.9, ge=0, lt=1)
    beta_2: float = Field(default=0.999, ge=0, lt=1)
    epsilon: float = Field(default=1e-7, gt=0)


class RMSprop(OptimizerBase):
    type: Literal["RMSprop"]
    rho: float = Field(default=0.9, ge=0, lt=1)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    epsilon: float = Field(default=1e-7, gt=0)
    centered: bool = False


class Adagrad(OptimizerBase):
    type: Literal["Adagrad"]
    initial_accumulator_value: float = Field(default=0.1, ge=0)
    epsilon: float = Field(default=1e-7, gt=0)


Optimizer = Annotated[SGD | Adam | AdamW | RMSprop | Adagrad, Field(discriminator="type")]
OPTIMIZER_TYPES = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")


class CompileSpec(SpecModel):
    optimizer: OptimizerName | Optimizer = "adam"
    loss: LossName
    metrics: list[MetricName] = Field(default_factory=list, max_length=20)


# --- fit ----------------------------------------------------------------------------------------


class EarlyStopping(SpecModel):
    monitor: str = Field(default="val_loss", pattern=r"^[a-z_0-9]{1,64}$")
    patience: int = Field(default=3, ge=0, le=10_000)
    min_delta: float = Field(default=0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = False


class FitSpec(SpecModel):
    epochs: int = Field(default=10, ge=1, le=100_000)
    batch_size: int = Field(default=32, ge=1, le=1 << 16)
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    shuffle: bool = True
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    early_stopping: EarlyStopping | None = None
    steps_per_execution: int = Field(default=1, ge=1, le=1024)


class TrainingSpec(SpecModel):
    """What the worker needs to build and train a model: stored verbatim on the job."""

    model: SequentialModel
    compile: CompileSpec
    fit: FitSpec = Field(default_factory=FitSpec)


# Tags pydantic inserts into error locations of discriminated unions; error paths drop them.
UNION_TAGS = frozenset({*LAYER_TYPES, *OPTIMIZER_TYPES, "L1", "L2", "L1L2"})


def layer_kwargs(layer: SpecModel) -> dict[str, Any]:
    """Constructor arguments of a layer spec, without `type` and unset optional values."""
    return layer.model_dump(exclude={"type", "input_dim", "input_shape"}, exclude_none=True)
