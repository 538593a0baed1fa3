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

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from app.ml.keras_names import BY_NAME, BY_TYPE
from app.ml.layers import LAYER_CLASSES, LAYERS_CEILING, Layer, LayerName, NestedModel
from app.ml.layers.base import Shape
from app.ml.objects import OBJECT_TAGS, Seed, SpecModel
from app.ml.optimization import OPTIMIZATION_TAGS, Loss, Metric, OptimizerSpec

PositiveInt = Annotated[int, Field(gt=0, le=1_000_000)]


class SpecError(ValueError):
    """A spec that is well-formed but cannot work (shapes, sizes). `path` names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message

    def __reduce__(self) -> tuple[type["SpecError"], tuple[str, str]]:
        # Raised in a pool process and re-raised in the API: pickled with both arguments.
        return type(self), (self.path, self.message)


# The default of TRAINYARD_MAX_LAYERS: the cap a spec meets when no setting is passed in.
DEFAULT_MAX_LAYERS = 2_000


class SequentialModel(SpecModel):
    """A stack of layers; the input shape comes from the dataset unless given."""

    layers: list[Layer] = Field(min_length=1, max_length=LAYERS_CEILING)
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
    layers: list[Layer] = Field(min_length=1, max_length=LAYERS_CEILING)
    outputs: list[LayerName | GraphOutput] = Field(min_length=1, max_length=16)

    @property
    def output_specs(self) -> list[GraphOutput]:
        return [GraphOutput(node=o) if isinstance(o, str) else o for o in self.outputs]


class KerasConfigModel(SpecModel):
    """Keras's own model JSON; translated (and checked) into a FunctionalModel when the job's
    TrainingSpec is made, not while the request body is parsed (that runs on the event loop)."""

    keras_config: dict[str, Any]
    _translated: "FunctionalModel | None" = None

    def translate(self, max_layers: int = DEFAULT_MAX_LAYERS) -> FunctionalModel:
        """The graph, translated once (raises KerasConfigError naming the place)."""
        from app.ml.keras_config import translate  # pure data translation, no Keras import

        if self._translated is None:
            self._translated = translate(self.keras_config, max_layers)
        return self._translated

    @property
    def graph(self) -> FunctionalModel:
        return self.translate()


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


def _one_or_per_output(value: Any) -> str:
    """A dict of output names (not a `{"type"}` or serialized object) gives one value per output."""
    if isinstance(value, dict) and not ({"type", "class_name"} & set(value)):
        return "per-output"
    return "all-outputs"


class CompileSpec(SpecModel):
    optimizer: OptimizerSpec = "adam"
    loss: Annotated[
        Annotated[Loss, Tag("all-outputs")] | Annotated[dict[LayerName, Loss], Tag("per-output")],
        Discriminator(_one_or_per_output),
    ]
    loss_weights: dict[LayerName, Annotated[float, Field(ge=0)]] | None = None
    metrics: Annotated[
        Annotated[list[Metric], Tag("all-outputs")] | Annotated[dict[LayerName, list[Metric]], Tag("per-output")],
        Discriminator(_one_or_per_output),
    ] = Field(default_factory=list)


class EarlyStopping(SpecModel):
    monitor: str = Field(default="val_loss", pattern=r"^[A-Za-z_0-9]{1,80}$")
    patience: int = Field(default=3, ge=0, le=10_000)
    min_delta: float = Field(default=0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = False
    start_from_epoch: int = Field(default=0, ge=0)


class ReduceLROnPlateau(SpecModel):
    monitor: str = Field(default="val_loss", pattern=r"^[A-Za-z_0-9]{1,80}$")
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
    performance: Literal["auto", "off"] = Field(
        default="auto",
        description='"auto": the worker picks what makes this fit fastest without changing what it computes '
        '(recorded on the job as `performance`); "off": exactly `model.fit` defaults.',
    )
    # Overrides of what `performance` would pick (None: its choice; under "off", Keras's default).
    steps_per_execution: int | None = Field(default=None, ge=1, le=1024)
    jit_compile: bool | None = Field(default=None, description="XLA compilation of the train step.")
    dtype_policy: Literal["float32", "mixed_bfloat16"] | None = Field(
        default=None, description="mixed_bfloat16 computes in bfloat16 (variables and outputs stay float32)."
    )
    data_placement: Literal["host", "pipeline", "device"] | None = Field(
        default=None,
        description="host: arrays handed to fit() each epoch (Keras's own input path); pipeline: batches "
        "gathered and prefetched ahead of the device; device: the training rows copied to the device once.",
    )
    fused_steps: bool | None = Field(
        default=None,
        description="Run each step group as one compiled loop over the rows on the device (TensorFlow and JAX; "
        "where the rows are not on the device, or a group cannot be fused, the job's performance says why it "
        "was not): the same steps on the same batches, without Keras's per-step calls.",
    )

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


class TeacherRef(SpecModel):
    """A registered model version to distill from: by version number or by label (a label is
    resolved to its version when the job is submitted, and the job keeps both)."""

    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)  # the registry's column is 32-bit
    label: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

    @model_validator(mode="after")
    def _one_of_version_or_label(self) -> "TeacherRef":
        if self.version is None and self.label is None:
            raise ValueError("name the teacher's version or its label")
        return self


class DistillSpec(SpecModel):
    """Knowledge distillation: the student (this spec's model) learns from the teacher's soft
    targets. Loss = alpha * (the compiled hard-label loss) + (1 - alpha) * T^2 * KL(teacher || student),
    both distributions softened at temperature T (Hinton et al. 2015; the keras.io example's convention)."""

    teacher: TeacherRef
    temperature: float = Field(default=2.0, gt=0, le=100)
    alpha: float = Field(default=0.1, ge=0, le=1)


class TrainingSpec(SpecModel):
    """What the worker needs to build and train a model: stored on the job in graph or stack
    form (a `keras_config` is stored as the graph it was translated into)."""

    model: ModelSpec
    compile: CompileSpec
    fit: FitSpec = Field(default_factory=FitSpec)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    distill: DistillSpec | None = None

    @field_validator("model", mode="after")
    @classmethod
    def _store_keras_config_as_graph(cls, model: Any) -> Any:
        """A field validator, so a refused `keras_config` is an error located at `model`."""
        return model.graph if isinstance(model, KerasConfigModel) else model

    def layer_count(self) -> int:
        """Every layer of the model, the layers of nested models included."""
        return count_layers(self.model.layers)  # type: ignore[union-attr]


def count_layers(layers: list[Any]) -> int:
    total, pending = 0, [layers]
    while pending:  # no recursion: nesting depth is bounded by the translator, not by the stack
        level = pending.pop()
        total += len(level)
        pending.extend(layer.graph.layers for layer in level if isinstance(layer, NestedModel))
    return total


# Tags pydantic inserts into error locations of discriminated unions; error paths drop them.
UNION_TAGS = frozenset(
    {
        *LAYER_CLASSES, *OBJECT_TAGS, *OPTIMIZATION_TAGS, "stack", "graph", "keras-config", BY_NAME, BY_TYPE,
        "all-outputs", "per-output",
    }
)  # fmt: skip
