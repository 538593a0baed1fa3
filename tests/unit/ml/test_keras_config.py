"""Keras's own model JSON: accepted for the whole catalog, refused whenever it could run code."""

import base64
import json
import marshal
from pathlib import Path
from typing import Any

import keras
import pytest
from pydantic import ValidationError

from app.ml.builder import build_model
from app.ml.spec import FunctionalModel, TrainingSpec
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
