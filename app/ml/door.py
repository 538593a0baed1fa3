"""The job door's spec checks as one pure function: plain data in, the spec to store out.

Run in a pool process by the API (app.cpu_pool.ProcessPool), so the `keras_config`
translation, the model build and the dry run hold neither the API's event loop nor its GIL, and
the API process never imports Keras. Nothing here imports Keras until `check_spec` runs.
"""

from dataclasses import dataclass
from typing import Any

from app.ml.keras_config import KerasConfigError
from app.ml.spec import (
    CompileSpec,
    DistillSpec,
    FitSpec,
    KerasConfigModel,
    ModelSpec,
    Preprocessing,
    SpecError,
    TrainingSpec,
)

# The stored form of a spec: TrainingSpec.model_dump(mode="json"), as the job row keeps it.
StoredSpec = dict[str, Any]


@dataclass(frozen=True)
class SpecCheck:
    """A submitted spec, the dataset's schema (Dataset.features and .target) and the limits."""

    model: ModelSpec
    compile: CompileSpec
    fit: FitSpec
    preprocessing: Preprocessing
    features: dict[str, Any]
    target: dict[str, Any]
    max_layers: int
    max_params: int
    max_activation_bytes: int | None
    # Specs with more layers skip the build and dry run here: the worker does them first.
    build_max_layers: int
    # A distillation's teacher, as given (resolved and checked against the registry by the API).
    distill: DistillSpec | None = None


@dataclass(frozen=True)
class CheckedSpec:
    spec: StoredSpec
    epochs: int


def check_spec(check: SpecCheck) -> CheckedSpec:
    """The spec as the job stores it (a `keras_config` translated into a graph), once it is
    known to train on the dataset. Raises SpecError naming the field."""
    from app.ml.validation import check_against_dataset, check_without_building  # Keras: here only

    spec = training_spec(check)
    if spec.layer_count() <= check.build_max_layers:
        check_against_dataset(spec, check.features, check.target, check.max_params, check.max_activation_bytes)
    else:  # the build and dry run are the worker's first step (DESIGN.md, "the door")
        check_without_building(spec, check.features, check.target)
    return CheckedSpec(spec=stored_form(spec), epochs=spec.fit.epochs)


def stored_form(spec: TrainingSpec) -> StoredSpec:
    """The spec as the job keeps it; `distill` only when given (jobs stored before it existed
    read the same)."""
    return spec.model_dump(mode="json", exclude={"distill"} if spec.distill is None else None)


def training_spec(check: SpecCheck) -> TrainingSpec:
    """The job's spec, with a `keras_config` translated under the layer cap, and the layer cap
    applied to every form. Raises SpecError."""
    model = check.model
    if isinstance(model, KerasConfigModel):
        try:
            model.translate(check.max_layers)
        except KerasConfigError as exc:
            raise SpecError("model", str(exc)) from exc
    spec = TrainingSpec(
        model=model, compile=check.compile, fit=check.fit, preprocessing=check.preprocessing, distill=check.distill
    )
    count = spec.layer_count()
    if count > check.max_layers:
        raise SpecError(
            "model.layers",
            f"the model has {count:,} layers (nested models included), over the limit of "
            f"{check.max_layers:,} (TRAINYARD_MAX_LAYERS)",
        )
    return spec


def warm_up() -> None:
    """Run once in each spec-check process as it starts: Keras imported and one tiny model
    checked, so a request's check does not pay for the import and the backend's first op."""
    tiny = TrainingSpec.model_validate(
        {"model": {"layers": [{"type": "Dense", "units": 1}]}, "compile": {"loss": "mse"}}
    )
    check_spec(
        SpecCheck(
            model=tiny.model,
            compile=tiny.compile,
            fit=tiny.fit,
            preprocessing=tiny.preprocessing,
            features={"kind": "array", "shape": [2], "dtype": "float32"},
            target={"shape": [], "dtype": "float32"},
            max_layers=10,
            max_params=1_000,
            max_activation_bytes=None,
            build_max_layers=10,
        )
    )
