"""Spec → keras.Model, and the checks against a dataset's schema made before queueing."""

import pytest

from app.ml.builder import build_model
from app.ml.spec import SpecError, TrainingSpec
from app.ml.validation import check_against_dataset

FEATURES = {"shape": [100], "dtype": "float32", "columns": None}
TEN_CLASSES = {
    "shape": [],
    "dtype": "int64",
    "columns": ["label"],
    "classes": list(range(10)),
    "n_classes": 10,
}
CONTINUOUS = {
    "shape": [],
    "dtype": "float32",
    "columns": ["price"],
    "classes": None,
    "n_classes": None,
}


def classic(loss: str = "categorical_crossentropy", units: int = 10, **extra: object) -> TrainingSpec:
    """The textbook example: Dense(64, relu, input 100) → Dense(64, relu) → Dense(10, softmax)."""
    layers = [
        {"type": "Dense", "units": 64, "activation": "relu", "input_dim": 100},
        {"type": "Dense", "units": 64, "activation": "relu"},
        {"type": "Dense", "units": units, "activation": "softmax"},
    ]
    return TrainingSpec.model_validate(
        {
            "model": {"layers": layers},
            "compile": {"optimizer": "adam", "loss": loss, "metrics": ["accuracy"]},
            **extra,
        }
    )


def test_the_classic_example_builds_with_the_textbook_parameter_count() -> None:
    model = build_model(classic(), {"features": (100,)}).model
    assert model.count_params() == 100 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    assert tuple(model.outputs[0].shape) == (None, 10)


def test_regularizers_and_optimizer_objects_reach_keras() -> None:
    spec = TrainingSpec.model_validate(
        {
            "model": {"layers": [{"type": "Dense", "units": 1, "kernel_regularizer": {"type": "L2", "l2": 0.1}}]},
            "compile": {
                "optimizer": {"type": "SGD", "learning_rate": 0.5, "momentum": 0.9},
                "loss": "mse",
            },
        }
    )
    model = build_model(spec, {"features": (3,)}).model
    assert model.layers[-1].kernel_regularizer.l2 == pytest.approx(0.1)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.5)


def test_a_spec_that_fits_the_dataset_passes_and_reports_its_size() -> None:
    assert check_against_dataset(classic(), FEATURES, TEN_CLASSES, max_params=10**6) == 11_274


def test_an_input_dim_that_contradicts_the_dataset_is_rejected() -> None:
    with pytest.raises(SpecError, match=r"expects samples of shape \[100\].*shape \[20\]"):
        check_against_dataset(classic(), {**FEATURES, "shape": [20]}, TEN_CLASSES, max_params=10**6)


def test_output_units_must_match_the_number_of_classes() -> None:
    with pytest.raises(SpecError) as caught:
        check_against_dataset(classic(units=7), FEATURES, TEN_CLASSES, max_params=10**6)
    assert caught.value.path == "model.layers[2].units"
    assert "10 classes" in caught.value.message


def test_a_classification_loss_on_a_continuous_target_says_what_to_use() -> None:
    with pytest.raises(SpecError, match="use a regression loss") as caught:
        check_against_dataset(classic("sparse_categorical_crossentropy"), FEATURES, CONTINUOUS, max_params=10**6)
    assert caught.value.path == "compile.loss"


def test_the_parameter_cap_is_checked_before_training() -> None:
    with pytest.raises(SpecError, match="over the limit of 1,000"):
        check_against_dataset(classic(), FEATURES, TEN_CLASSES, max_params=1000)
