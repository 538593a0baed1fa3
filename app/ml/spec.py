"""The job spec as data: pydantic models over an allowlist of Keras classes. No Keras import here.

A model is one of three forms:
- a stack: `{"layers": [...]}` (each layer takes the previous one's output);
- a graph: `{"inputs": [...], "layers": [... each with "name" and "inputs"], "outputs": [...]}`;
- Keras's own JSON: `{"keras_config": model.get_config() or json.loads(model.to_json())}`,
  checked against the same allowlist and translated into a graph (see keras_config.py).
Every class name a user may write is a `Literal`, every argument a typed field, and unknown
keys are rejected, so nothing in a spec can name code or files.
"""

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from app.ml.layers import LAYER_CLASSES, Layer, LayerName
from app.ml.objects import OBJECT_TAGS, Seed, SpecModel
from app.ml.optimization import OPTIMIZATION_TAGS, Loss, Metric, Optimizer, OptimizerName

PositiveInt = Annotated[int, Field(gt=0, le=1_000_000)]


class SpecError(ValueError):
    """A spec that is well-formed but cannot work (shapes, sizes). `path` names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


Shape = Annotated[list[PositiveInt], Field(min_length=1, max_length=5)]
MAX_LAYERS = 500


class SequentialModel(SpecModel):
    """A stack of layers; the input shape comes from the dataset unless given."""

    layers: list[Layer] = Field(min_length=1, max_length=MAX_LAYERS)
    input_shape: Shape | None = None


class GraphInput(SpecModel):
    name: LayerName
    shape: Shape | None = Field(default=None, description="Per-sample shape; default: the dataset's.")
    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Tabular datasets: the feature columns this input takes.",
    )


class GraphOutput(SpecModel):
    node: LayerName
    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Several outputs: the target columns this one predicts.",
    )


class FunctionalModel(SpecModel):
    """A graph: named inputs, layers that name the nodes they are called on, named outputs.

    A layer without `inputs` takes the node just before it; `{"type": "Call", "layer": <name>}`
    calls an earlier layer again with shared weights.
    """

    inputs: list[GraphInput] = Field(min_length=1, max_length=16)
    layers: list[Layer] = Field(min_length=1, max_length=MAX_LAYERS)
    outputs: list[LayerName | GraphOutput] = Field(min_length=1, max_length=16)

    @property
    def output_specs(self) -> list[GraphOutput]:
        return [GraphOutput(node=o) if isinstance(o, str) else o for o in self.outputs]


class KerasConfigModel(SpecModel):
    """Keras's own model JSON; translated (and checked) into a FunctionalModel on validation."""

    keras_config: dict[str, Any]
    _translated: "FunctionalModel | None" = None

    @model_validator(mode="after")
    def _translate(self) -> "KerasConfigModel":
        from app.ml.keras_config import translate  # pure data translation, no Keras import

        self._translated = translate(self.keras_config)
        return self

    @property
    def graph(self) -> FunctionalModel:
        assert self._translated is not None
        return self._translated


def _model_form(value: Any) -> str:
    if isinstance(value, dict):
        if "keras_config" in value:
            return "keras-config"
        if "inputs" in value or "outputs" in value:
            return "graph"
        return "stack"
    if isinstance(value, KerasConfigModel):
        return "keras-config"
    return "graph" if isinstance(value, FunctionalModel) else "stack"


ModelSpec = Annotated[
    Annotated[SequentialModel, Tag("stack")]
    | Annotated[FunctionalModel, Tag("graph")]
    | Annotated[KerasConfigModel, Tag("keras-config")],
    Discriminator(_model_form),
]


class CompileSpec(SpecModel):
    optimizer: OptimizerName | Optimizer = "adam"
    loss: Loss | dict[LayerName, Loss]
    loss_weights: dict[LayerName, Annotated[float, Field(ge=0)]] | None = None
    metrics: list[Metric] | dict[LayerName, list[Metric]] = Field(default_factory=list)


class EarlyStopping(SpecModel):
    monitor: str = Field(default="val_loss", pattern=r"^[a-z_0-9]{1,64}$")
    patience: int = Field(default=3, ge=0, le=10_000)
    min_delta: float = Field(default=0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = False
    start_from_epoch: int = Field(default=0, ge=0)


class ReduceLROnPlateau(SpecModel):
    monitor: str = Field(default="val_loss", pattern=r"^[a-z_0-9]{1,64}$")
    factor: float = Field(default=0.1, gt=0, lt=1)
    patience: int = Field(default=10, ge=0, le=10_000)
    min_delta: float = Field(default=0.0001, ge=0)
    cooldown: int = Field(default=0, ge=0)
    min_lr: float = Field(default=0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"


class FitSpec(SpecModel):
    epochs: int = Field(default=10, ge=1, le=100_000)
    batch_size: int = Field(default=32, ge=1, le=1 << 16)
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    test_split: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Held out, evaluated after training: test_* metrics."
    )
    shuffle: bool = True
    seed: Seed | None = None
    class_weight: dict[int, Annotated[float, Field(gt=0)]] | None = None
    early_stopping: EarlyStopping | None = None
    reduce_lr_on_plateau: ReduceLROnPlateau | None = None
    steps_per_execution: int = Field(default=1, ge=1, le=1024)

    @model_validator(mode="after")
    def _leave_rows_to_train(self) -> "FitSpec":
        if self.validation_split + self.test_split >= 0.95:
            raise ValueError("validation_split + test_split must leave at least 5% of the rows to train on")
        return self


class FillConstant(SpecModel):
    constant: float


class Preprocessing(SpecModel):
    """Done inside the model (or recorded with it), so predict takes the same raw rows the dataset had."""

    standardize: bool = Field(
        default=False, description="Scale numeric columns to mean 0, variance 1 (adapted on the training rows)."
    )
    missing: Literal["reject", "drop", "mean"] | FillConstant = Field(
        default="reject",
        description="Empty numeric cells: refuse the dataset (default), drop those rows, or fill them with the "
        "column's mean or a constant (predict fills missing values the same way).",
    )


class TrainingSpec(SpecModel):
    """What the worker needs to build and train a model: stored on the job in graph or stack
    form (a `keras_config` is stored as the graph it was translated into)."""

    model: ModelSpec
    compile: CompileSpec
    fit: FitSpec = Field(default_factory=FitSpec)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)

    @model_validator(mode="after")
    def _store_keras_config_as_graph(self) -> "TrainingSpec":
        if isinstance(self.model, KerasConfigModel):
            self.model = self.model.graph
        return self


# Tags pydantic inserts into error locations of discriminated unions; error paths drop them.
UNION_TAGS = frozenset({*LAYER_CLASSES, *OBJECT_TAGS, *OPTIMIZATION_TAGS, "stack", "graph", "keras-config"})
