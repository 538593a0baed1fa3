"""The spec language: what it accepts, what it rejects, and where it says the error is."""

import pytest
from pydantic import ValidationError

from app.api.errors import field_path
from app.ml.spec import TrainingSpec
from tests.factories import mlp_layers


def spec(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "model": {"layers": mlp_layers()},
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
    }
    body.update(overrides)
    return body


def error_paths(body: dict[str, object]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        TrainingSpec.model_validate(body)
    return [field_path(e["loc"]) for e in caught.value.errors()]


def test_the_textbook_mlp_is_accepted_with_defaults_filled_in() -> None:
    parsed = TrainingSpec.model_validate(spec())
    assert parsed.fit.epochs == 10 and parsed.fit.batch_size == 32
    assert [layer.type for layer in parsed.model.layers] == ["Dense", "Dense"]


def test_an_optimizer_object_with_clipping_is_accepted() -> None:
    optimizer = {
        "type": "SGD",
        "learning_rate": 0.01,
        "momentum": 0.9,
        "nesterov": True,
        "clipnorm": 1.0,
    }
    parsed = TrainingSpec.model_validate(spec(compile={"optimizer": optimizer, "loss": "mse"}))
    assert parsed.compile.optimizer.momentum == 0.9  # type: ignore[union-attr]


def test_a_bad_units_value_is_reported_at_its_path() -> None:
    layers = mlp_layers()
    layers[1]["units"] = 0
    assert error_paths(spec(model={"layers": layers})) == ["model.layers[1].units"]


@pytest.mark.parametrize("layer_type", ["Lambda", "TFSMLayer", "__import__", "Dense; os.system('x')"])
def test_layer_types_outside_the_allowlist_are_rejected(layer_type: str) -> None:
    layers = [{"type": layer_type, "function": "lambda x: x"}]
    assert error_paths(spec(model={"layers": layers})) == ["model.layers[0]"]


def test_unknown_layer_arguments_are_rejected_not_ignored() -> None:
    layers = mlp_layers()
    layers[0]["kernel_initializer_path"] = "/etc/passwd"
    assert error_paths(spec(model={"layers": layers})) == ["model.layers[0].kernel_initializer_path"]


def test_an_activation_must_be_a_known_name() -> None:
    layers = mlp_layers()
    layers[0]["activation"] = "__builtins__.eval"
    assert error_paths(spec(model={"layers": layers})) == ["model.layers[0].activation"]


def test_dropout_rate_must_be_below_one() -> None:
    layers = [{"type": "Dropout", "rate": 1.5}, *mlp_layers()]
    assert error_paths(spec(model={"layers": layers})) == ["model.layers[0].rate"]


def test_an_empty_model_is_rejected() -> None:
    assert error_paths(spec(model={"layers": []})) == ["model.layers"]


def test_a_mistyped_argument_keeps_its_path_and_suggests_the_closest() -> None:
    layers = mlp_layers()
    layers[0]["unit"] = 3
    with pytest.raises(ValidationError) as caught:
        TrainingSpec.model_validate(spec(model={"layers": layers}))
    (problem,) = caught.value.errors()
    assert problem["loc"][-1] == "unit" and problem["msg"] == "Dense has no argument 'unit'; did you mean 'units'?"
