"""What `compile` may name: optimizers (with clipping and learning-rate schedules), losses, metrics.

Each is a name or a `{"type": ...}` object; Keras's other names for them and the dicts
`keras.saving.serialize_keras_object` writes are rewritten to those forms (keras_names.py).
"""

from typing import Annotated, Literal, get_args

from pydantic import BeforeValidator, Discriminator, Field, Tag

from app.ml.keras_names import ANY, BY_NAME, BY_TYPE, Kind, by_type, class_aliases, name_or_object
from app.ml.objects import SpecModel

Positive = Annotated[float, Field(gt=0)]
Beta = Annotated[float, Field(ge=0, lt=1)]

# --- learning-rate schedules ------------------------------------------------------------------


class ExponentialDecay(SpecModel):
    type: Literal["ExponentialDecay"]
    initial_learning_rate: Positive
    decay_steps: int = Field(gt=0)
    decay_rate: Positive
    staircase: bool = False


class PiecewiseConstantDecay(SpecModel):
    type: Literal["PiecewiseConstantDecay"]
    boundaries: list[int] = Field(min_length=1, max_length=100)
    values: list[Positive] = Field(min_length=2, max_length=101)


class CosineDecay(SpecModel):
    type: Literal["CosineDecay"]
    initial_learning_rate: float = Field(ge=0)
    decay_steps: int = Field(gt=0)
    alpha: float = Field(default=0.0, ge=0, le=1)
    warmup_target: Positive | None = None
    warmup_steps: int = Field(default=0, ge=0)


class PolynomialDecay(SpecModel):
    type: Literal["PolynomialDecay"]
    initial_learning_rate: Positive
    decay_steps: int = Field(gt=0)
    end_learning_rate: float = Field(default=0.0001, ge=0)
    power: Positive = 1.0
    cycle: bool = False


class InverseTimeDecay(SpecModel):
    type: Literal["InverseTimeDecay"]
    initial_learning_rate: Positive
    decay_steps: int = Field(gt=0)
    decay_rate: Positive
    staircase: bool = False


Schedule = Annotated[
    ExponentialDecay | PiecewiseConstantDecay | CosineDecay | PolynomialDecay | InverseTimeDecay,
    Field(discriminator="type"),
]
SCHEDULES = Kind("learning-rate schedule", "keras.optimizers.schedules", (), by_type(Schedule), fixed={"name": ANY})
LearningRate = Annotated[Annotated[float, Field(gt=0, le=10)] | Schedule, BeforeValidator(SCHEDULES.normalise_object)]

# --- optimizers -------------------------------------------------------------------------------

OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "lion"]


class _Optimizer(SpecModel):
    learning_rate: LearningRate = 0.001
    weight_decay: float | None = Field(default=None, ge=0)
    clipnorm: Positive | None = None
    clipvalue: Positive | None = None
    global_clipnorm: Positive | None = None
    gradient_accumulation_steps: int | None = Field(default=None, ge=2, le=1024)


class SGD(_Optimizer):
    """Plain gradient descent, or with momentum / Nesterov momentum."""

    type: Literal["SGD"]
    learning_rate: LearningRate = 0.01
    momentum: Beta = 0.0
    nesterov: bool = False


class Adam(_Optimizer):
    type: Literal["Adam"]
    beta_1: Beta = 0.9
    beta_2: Beta = 0.999
    epsilon: Positive = 1e-7
    amsgrad: bool = False


class AdamW(Adam):
    type: Literal["AdamW"]  # type: ignore[assignment]
    weight_decay: float | None = Field(default=0.004, ge=0)


class Adamax(_Optimizer):
    type: Literal["Adamax"]
    beta_1: Beta = 0.9
    beta_2: Beta = 0.999
    epsilon: Positive = 1e-7


class Nadam(Adamax):
    type: Literal["Nadam"]  # type: ignore[assignment]


class RMSprop(_Optimizer):
    type: Literal["RMSprop"]
    rho: Beta = 0.9
    momentum: Beta = 0.0
    epsilon: Positive = 1e-7
    centered: bool = False


class Adagrad(_Optimizer):
    type: Literal["Adagrad"]
    initial_accumulator_value: float = Field(default=0.1, ge=0)
    epsilon: Positive = 1e-7


class Adadelta(_Optimizer):
    type: Literal["Adadelta"]
    rho: Beta = 0.95
    epsilon: Positive = 1e-7


class Lion(_Optimizer):
    type: Literal["Lion"]
    learning_rate: LearningRate = 0.0001
    beta_1: Beta = 0.9
    beta_2: Beta = 0.99


Optimizer = Annotated[
    SGD | Adam | AdamW | Adamax | Nadam | RMSprop | Adagrad | Adadelta | Lion,
    Field(discriminator="type"),
]
OPTIMIZERS = Kind(
    "optimizer",
    "keras.optimizers",
    get_args(OptimizerName),
    by_type(Optimizer),
    fixed={"name": ANY, "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
           "loss_scale_factor": None},
    case_insensitive=True,  # as keras.optimizers.get: "Adam", "ADAM" and "adam" are one optimizer
    nested={"learning_rate": SCHEDULES},
)  # fmt: skip
OptimizerSpec = Annotated[
    Annotated[OptimizerName, Tag(BY_NAME)] | Annotated[Optimizer, Tag(BY_TYPE)],
    Discriminator(name_or_object),
    BeforeValidator(OPTIMIZERS.normalise),
]

# --- losses and metrics -------------------------------------------------------------------------

LossName = Literal[
    "mean_squared_error", "mse", "mean_absolute_error", "mae", "mean_absolute_percentage_error",
    "mape", "mean_squared_logarithmic_error", "msle", "huber", "log_cosh", "binary_crossentropy",
    "binary_focal_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "kl_divergence", "kld", "poisson", "hinge", "squared_hinge", "categorical_hinge",
    "cosine_similarity",
]  # fmt: skip


class _Crossentropy(SpecModel):
    from_logits: bool = False
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)


class BinaryCrossentropy(_Crossentropy):
    type: Literal["BinaryCrossentropy"]


class CategoricalCrossentropy(_Crossentropy):
    type: Literal["CategoricalCrossentropy"]


class SparseCategoricalCrossentropy(SpecModel):
    type: Literal["SparseCategoricalCrossentropy"]
    from_logits: bool = False
    ignore_class: int | None = None


class BinaryFocalCrossentropy(_Crossentropy):
    type: Literal["BinaryFocalCrossentropy"]
    gamma: float = Field(default=2.0, ge=0)
    alpha: float = Field(default=0.25, ge=0, le=1)
    apply_class_balancing: bool = False


class Huber(SpecModel):
    type: Literal["Huber"]
    delta: Positive = 1.0


LossObject = Annotated[
    BinaryCrossentropy | CategoricalCrossentropy | SparseCategoricalCrossentropy
    | BinaryFocalCrossentropy | Huber,
    Field(discriminator="type"),
]  # fmt: skip
LOSSES = Kind(
    "loss",
    "keras.losses",
    get_args(LossName),
    by_type(LossObject),
    aliases={
        **class_aliases(
            ["BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy", "CategoricalHinge",
             "CosineSimilarity", "Hinge", "Huber", "KLDivergence", "LogCosh", "MeanAbsoluteError",
             "MeanAbsolutePercentageError", "MeanSquaredError", "MeanSquaredLogarithmicError", "Poisson",
             "SparseCategoricalCrossentropy", "SquaredHinge"],
            get_args(LossName),
            {},
        ),
        "MSE": "mse", "MAE": "mae", "MAPE": "mape", "MSLE": "msle", "KLD": "kld",
        "BCE": "binary_crossentropy", "bce": "binary_crossentropy",
    },
    fixed={"name": ANY, "reduction": "sum_over_batch_size", "axis": -1, "dtype": None},
)  # fmt: skip
Loss = Annotated[
    Annotated[LossName, Tag(BY_NAME)] | Annotated[LossObject, Tag(BY_TYPE)],
    Discriminator(name_or_object),
    BeforeValidator(LOSSES.normalise),
]

MetricName = Literal[
    "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "mse", "mae", "mape",
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "root_mean_squared_error", "auc", "precision", "recall", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "kl_divergence", "poisson",
    "cosine_similarity", "log_cosh_error", "r2_score",
]  # fmt: skip


class AUC(SpecModel):
    type: Literal["AUC"]
    num_thresholds: int = Field(default=200, ge=2, le=10_000)
    curve: Literal["ROC", "PR"] = "ROC"
    from_logits: bool = False
    multi_label: bool = False
    name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")


class Precision(SpecModel):
    type: Literal["Precision"]
    thresholds: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, gt=0)
    class_id: int | None = Field(default=None, ge=0)
    name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")


class Recall(Precision):
    type: Literal["Recall"]  # type: ignore[assignment]


class TopKCategoricalAccuracy(SpecModel):
    type: Literal["TopKCategoricalAccuracy"]
    k: int = Field(default=5, gt=0)
    name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    type: Literal["SparseTopKCategoricalAccuracy"]  # type: ignore[assignment]


MetricObject = Annotated[
    AUC | Precision | Recall | TopKCategoricalAccuracy | SparseTopKCategoricalAccuracy,
    Field(discriminator="type"),
]
METRICS = Kind(
    "metric",
    "keras.metrics",
    get_args(MetricName),
    by_type(MetricObject),
    aliases={
        **class_aliases(
            ["AUC", "BinaryAccuracy", "BinaryCrossentropy", "CategoricalAccuracy", "CategoricalCrossentropy",
             "CosineSimilarity", "KLDivergence", "LogCoshError", "MeanAbsoluteError",
             "MeanAbsolutePercentageError", "MeanSquaredError", "Poisson", "Precision", "R2Score", "Recall",
             "RootMeanSquaredError", "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
             "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy"],
            get_args(MetricName),
            {},
        ),
        "MSE": "mse", "MAE": "mae", "MAPE": "mape", "BCE": "binary_crossentropy",
        "bce": "binary_crossentropy", "acc": "accuracy",  # model.compile takes "acc"
    },
    fixed={"dtype": "float32", "summation_method": "interpolation", "num_labels": None, "label_weights": None},
)  # fmt: skip
Metric = Annotated[
    Annotated[MetricName, Tag(BY_NAME)] | Annotated[MetricObject, Tag(BY_TYPE)],
    Discriminator(name_or_object),
    BeforeValidator(METRICS.normalise),
]

OPTIMIZATION_TAGS = frozenset(
    {
        "ExponentialDecay", "PiecewiseConstantDecay", "CosineDecay", "PolynomialDecay",
        "InverseTimeDecay", "SGD", "Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad",
        "Adadelta", "Lion", "BinaryCrossentropy", "CategoricalCrossentropy",
        "SparseCategoricalCrossentropy", "BinaryFocalCrossentropy", "Huber", "AUC", "Precision",
        "Recall", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
    }
)  # fmt: skip
