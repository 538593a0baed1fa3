"""Keras's own model JSON: accepted for the whole catalog, refused whenever it could run code."""

import base64
import json
import marshal
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from pydantic import ValidationError

from app.ml.builder import build_model
from app.ml.data import bind_outputs
from app.ml.spec import FunctionalModel, SpecError, TrainingSpec
from tests.unit.ml.catalog_examples import LAYER_EXAMPLES

COMPILE = {"optimizer": "adam", "loss": "mse"}


def spec_of(model: dict[str, Any]) -> TrainingSpec:
    return TrainingSpec.model_validate({"model": model, "compile": COMPILE})


def layer_classes(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def refusal(config: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        spec_of({"keras_config": config})
    return str(caught.value)


@pytest.mark.parametrize("layer_type", sorted(LAYER_EXAMPLES))
def test_to_json_of_each_catalog_layer_round_trips(layer_type: str) -> None:
    arguments, shape = LAYER_EXAMPLES[layer_type]
    layers = [{"type": layer_type, **arguments}, {"type": "Flatten"}, {"type": "Dense", "units": 1}]
    original = build_model(spec_of({"layers": layers}), {"features": shape}).model

    again = spec_of({"keras_config": json.loads(original.to_json())})

    assert isinstance(again.model, FunctionalModel)
    rebuilt = build_model(again, {again.model.inputs[0].name: shape}).model
    assert layer_classes(rebuilt) == layer_classes(original)
    assert rebuilt.count_params() == original.count_params()


def test_a_sequential_models_to_json_is_accepted() -> None:
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(0.01)),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    spec = spec_of({"keras_config": json.loads(model.to_json())})
    assert [layer.type for layer in spec.model.layers] == ["Dense", "Dropout", "Dense"]  # type: ignore[union-attr]
    assert spec.model.inputs[0].shape == [4]  # type: ignore[union-attr]


def test_a_functional_get_config_with_two_inputs_and_a_shared_layer_round_trips() -> None:
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    shared = keras.layers.Dense(5, name="shared")
    merged = keras.layers.Concatenate(name="cat")([shared(a), shared(b)])
    original = keras.Model([a, b], keras.layers.Dense(1, name="out")(merged))

    spec = spec_of({"keras_config": original.get_config()})

    rebuilt = build_model(spec, {"a": (4,), "b": (4,)}).model
    assert rebuilt.count_params() == original.count_params()  # the shared weights are shared again
    assert [layer.type for layer in spec.model.layers] == ["Dense", "Call", "Concatenate", "Dense"]  # type: ignore[union-attr]


def test_lambda_layers_are_refused() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    assert "Lambda is not allowed" in refusal(json.loads(model.to_json()))


def test_objects_from_other_modules_are_refused() -> None:
    config = {
        "class_name": "Sequential",
        "config": {"layers": [{"module": "os", "class_name": "system", "config": {"command": "true"}}]},
    }
    assert "objects from module 'os' are not allowed" in refusal(config)


def test_custom_registered_objects_are_refused() -> None:
    layer = {"module": "keras.layers", "class_name": "Dense", "registered_name": "my_pkg>Evil", "config": {"units": 1}}
    assert "custom (registered) objects" in refusal({"class_name": "Sequential", "config": {"layers": [layer]}})


def test_injected_code_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    code = compile(f"open({str(marker)!r}, 'w').write('x')", "<spec>", "exec")
    payload = base64.b64encode(marshal.dumps(code)).decode()
    function = {"class_name": "__lambda__", "config": {"code": payload, "defaults": None, "closure": None}}
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 2]}},
                {"module": "keras.layers", "class_name": "Lambda", "config": {"function": function}},
            ]
        },
    }
    message = refusal(config)
    assert "not allowed" in message or "never loaded" in message
    assert not marker.exists()


def test_an_unknown_layer_type_names_the_layer() -> None:
    config = {
        "class_name": "Sequential",
        "config": {"layers": [{"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/x"}}]},
    }
    assert "TFSMLayer is not allowed" in refusal(config)


def test_bad_arguments_inside_a_config_name_the_layer_and_field() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, name="hidden")])
    config = json.loads(model.to_json())
    config["config"]["layers"][1]["config"]["units"] = -3
    message = refusal(config)
    assert "layer 'hidden' (Dense): units" in message


def test_a_module_that_is_not_a_string_is_refused() -> None:
    # Found by the HTTP property test: a list here once raised TypeError (a 500).
    assert "objects from module [] are not allowed" in refusal({"class_name": "Sequential", "module": []})


@pytest.mark.parametrize("dtype", [{"config": None}, {"config": []}, {"config": "x"}])
def test_a_dtype_policy_whose_config_is_not_an_object_is_refused(dtype: object) -> None:
    # Found by the HTTP property test: {"config": null} once raised AttributeError (a 500).
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, name="hidden")])
    config = json.loads(model.to_json())
    config["config"]["layers"][1]["config"]["dtype"] = dtype
    assert "a dtype policy's 'config' must be an object" in refusal(config)


# --- what Keras users write: ops, nested models, several outputs -----------------------------


def test_ops_layers_a_nested_sequential_and_a_shared_layer_round_trip() -> None:
    x = keras.Input((4,), name="x")
    shared = keras.layers.Dense(4, name="shared")
    scaled = keras.ops.mean(shared(x) * 0.5 + shared(x - 1.0), axis=-1, keepdims=True)
    head = keras.Sequential([keras.layers.Dense(3, activation="softmax")], name="head")
    original = keras.Model(x, head(keras.ops.concatenate([scaled, x], axis=-1)))

    spec = spec_of({"keras_config": json.loads(original.to_json())})

    layers = spec.model.layers  # type: ignore[union-attr]
    assert [layer.type for layer in layers].count("Operation") == 5  # *, -, +, mean, concatenate
    assert layers[-1].type == "Model" and layers[-1].graph.inputs[0].shape == [5]  # type: ignore[attr-defined]
    rebuilt = build_model(spec, {"x": (4,)}).model
    assert rebuilt.count_params() == original.count_params()
    sample = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    rebuilt.set_weights(original.get_weights())
    assert np.allclose(rebuilt(sample), original(sample), atol=1e-6)


def test_a_frozen_base_model_stays_frozen() -> None:
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)], name="base")
    inner.trainable = False
    original = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)])

    rebuilt = build_model(spec_of({"keras_config": json.loads(original.to_json())}), {"features": (4,)}).model

    assert len(rebuilt.trainable_weights) == 2 and len(rebuilt.non_trainable_weights) == 2


TWO_OUTPUTS = {"dtype": "float32", "shape": [2], "classes": None, "n_classes": None}


def two_output_spec(names: tuple[str, str]) -> TrainingSpec:
    x = keras.Input((4,))
    model = keras.Model(x, [keras.layers.Dense(1, name=names[0])(x), keras.layers.Dense(1, name=names[1])(x)])
    return spec_of({"keras_config": json.loads(model.to_json())})


def test_several_outputs_take_the_target_columns_named_like_them_or_in_order() -> None:
    spec = two_output_spec(("b", "a"))
    outputs = spec.model.output_specs  # type: ignore[union-attr]
    assert bind_outputs(outputs, {**TWO_OUTPUTS, "columns": ["a", "b"]}) == {"b": [1], "a": [0]}
    assert bind_outputs(outputs, {**TWO_OUTPUTS, "columns": ["p", "q"]}) == {"b": [0], "a": [1]}
    with pytest.raises(SpecError) as caught:
        bind_outputs(outputs, {**TWO_OUTPUTS, "shape": [3], "columns": ["p", "q", "r"]})
    assert caught.value.path == "model.outputs" and "2 outputs (b, a)" in caught.value.message


def test_a_config_key_that_is_a_graph_key_is_refused() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    config = json.loads(model.to_json())
    config["config"]["layers"][1]["config"]["inputs"] = ["elsewhere"]
    assert "config.inputs: not an argument of a Keras layer" in refusal(config)


# One keras.applications model for each Keras-internal piece the zoo uses (every model of the
# zoo is submitted over HTTP in tests/unit/api/test_keras_config_api.py; these are also built).
ZOO_PIECES = {
    "MobileNetV3Small": 32,  # ops layers from `x + 3.0` and `* (1 / 6)` (hard-swish)
    "ConvNeXtTiny": 32,  # LayerScale, nested Sequentials, ops.numpy.Add
    "EfficientNetB0": 32,  # Normalization without mean/variance behind a Rescaling
    "InceptionResNetV2": 75,  # CustomScaleLayer
}


@pytest.mark.parametrize("name", sorted(ZOO_PIECES))
def test_a_keras_application_is_rebuilt_with_its_own_parameter_count(name: str) -> None:
    size = ZOO_PIECES[name]
    original = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
    # Keras stores an un-adapted Normalization's statistics as weights (mean, variance, count);
    # the translated graph states them as constants (mean 0, variance 1: what Keras computes).
    statistics = sum(
        int(np.prod(w.shape)) for layer in original.layers if type(layer).__name__ == "Normalization"
        for w in layer.non_trainable_weights
    )  # fmt: skip
    spec = spec_of({"keras_config": json.loads(original.to_json())})
    rebuilt = build_model(spec, {spec.model.inputs[0].name: (size, size, 3)}).model  # type: ignore[union-attr]
    assert rebuilt.count_params() == original.count_params() - statistics
    keras.backend.clear_session()
