"""Property: any spec, random or hostile, ends as a refusal (422) or a model that trains."""

from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.ml.data import save_arrays
from app.ml.layers import LAYER_CLASSES
from app.ml.spec import SpecError, TrainingSpec
from app.ml.training import ProgressCallback, train
from app.ml.validation import check_against_dataset

FEATURES = {"shape": [6], "dtype": "float32", "columns": None}
TARGET = {"shape": [], "dtype": "int64", "columns": ["label"], "classes": [0, 1, 2], "n_classes": 3}
HOSTILE_NAMES = ["Lambda", "TFSMLayer", "__import__", "os.system", "eval", "exec", "StringLookup"]
ARGUMENT_NAMES = sorted(
    {name for cls in LAYER_CLASSES.values() for name in cls.model_fields}
    | {"function", "module", "__class__", "filepath", "vocabulary", "code", "custom_objects"}
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["relu", "same", "glorot_uniform", "lambda x: x", "/etc/passwd", "__import__('os')", ""]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["type", "units", "l2", "seed"]), inner, max_size=3)
    ),
    max_leaves=6,
)
# A catalog or hostile type with up to four arguments drawn from every argument name any layer
# has, plus hostile ones: most are not arguments of the drawn type, which the door must refuse.
layers = st.builds(
    lambda layer_type, arguments: {**arguments, "type": layer_type},
    st.sampled_from(sorted(LAYER_CLASSES) + HOSTILE_NAMES),
    st.dictionaries(st.sampled_from(ARGUMENT_NAMES), json_values, max_size=4),
)
keras_configs = st.dictionaries(
    st.sampled_from(["class_name", "module", "config", "layers", "registered_name", "__lambda__"]),
    json_values
    | st.lists(st.dictionaries(st.sampled_from(["class_name", "module", "config"]), json_values), max_size=3),
    max_size=4,
)
# Plausible specs: layers that take flat features, with arguments of roughly the right kind.
FLAT_LAYERS = [
    "Dense", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Dropout", "GaussianNoise",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "Reshape", "RepeatVector",
    "Rescaling", "Normalization", "Embedding", "Flatten",
]  # fmt: skip
plausible_values = st.one_of(
    st.integers(min_value=-2, max_value=70),
    st.floats(min_value=-1, max_value=2),
    st.booleans(),
    st.sampled_from(["relu", "tanh", "softmax", "glorot_uniform", "zeros", "l2", "max_norm", "same"]),
    st.lists(st.integers(min_value=-1, max_value=7), min_size=1, max_size=3),
)


@st.composite
def plausible_layer(draw: st.DrawFn) -> dict[str, Any]:
    layer_type = draw(st.sampled_from(FLAT_LAYERS))
    fields = sorted(set(LAYER_CLASSES[layer_type].model_fields) - {"type", "name", "inputs", "trainable"})
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=min(2, len(fields)))) if fields else []
    return {"type": layer_type, **{name: draw(plausible_values) for name in chosen}}


models = st.one_of(
    st.lists(plausible_layer(), min_size=1, max_size=3).map(
        lambda ls: {"layers": [*ls, {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]}
    ),
    st.lists(layers, min_size=1, max_size=3).map(
        lambda ls: {"layers": [*ls, {"type": "Dense", "units": 3, "activation": "softmax"}]}
    ),
    keras_configs.map(lambda config: {"keras_config": config}),
)


def door(model: dict[str, Any]) -> TrainingSpec | ValidationError | SpecError:
    """What the door makes of `model`: the accepted spec, or the refusal (a 422 in the API)."""
    try:
        spec = TrainingSpec.model_validate(
            {
                "model": model,
                "compile": {"loss": "sparse_categorical_crossentropy"},
                "fit": {"epochs": 1, "batch_size": 4},
            }
        )
        check_against_dataset(spec, FEATURES, TARGET, max_params=1_000_000)
    except (ValidationError, SpecError) as refusal:
        return refusal
    return spec


def unknown_arguments(model: dict[str, Any]) -> list[str]:
    """`type.argument` for each argument of a stack's layer that its type does not have (or a
    type outside the catalog): what the door must never let through."""
    found = []
    for layer in model.get("layers", []):
        cls = LAYER_CLASSES.get(layer["type"])
        if cls is None:
            found.append(f"{layer['type']} (not in the catalog)")
            continue
        known = set(cls.model_fields) | {info.alias for info in cls.model_fields.values() if info.alias}
        found += [f"{layer['type']}.{key}" for key in layer if key not in known]
    return found


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(model=models)
def test_any_spec_is_refused_naming_a_field_or_trains(model: dict[str, Any], tmp_path: Path) -> None:
    verdict = door(model)
    if isinstance(verdict, ValidationError):
        assert verdict.errors() and all(error["loc"] for error in verdict.errors()), verdict
        return
    if isinstance(verdict, SpecError):
        assert verdict.path and verdict.message, verdict
        return
    # Accepted: only catalog types with their own arguments got through, and it trains.
    assert unknown_arguments(model) == [], f"accepted {model}"
    rng = np.random.default_rng(0)
    save_arrays(tmp_path, rng.random((8, 6), dtype=np.float32), rng.integers(0, 3, 8))
    result = train(verdict, tmp_path, FEATURES, TARGET, ProgressCallback(lambda *_: None))
    assert result.epochs_run == 1


@given(name=st.sampled_from(HOSTILE_NAMES), argument=json_values)
def test_hostile_layer_types_are_always_refused(name: str, argument: Any) -> None:
    try:
        TrainingSpec.model_validate(
            {"model": {"layers": [{"type": name, "function": argument}]}, "compile": {"loss": "mse"}}
        )
    except ValidationError:
        return
    raise AssertionError(f"{name} was accepted")
