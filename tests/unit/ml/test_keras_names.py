"""Names and serialized objects Keras accepts are accepted too, and stored in one canonical form."""

from typing import Any, get_args

import keras
import numpy as np
import pytest

from app.ml import objects, optimization
from app.ml.builder import make_layer
from app.ml.keras_names import Kind
from app.ml.layers import Dense
from app.ml.spec import CompileSpec


def compile_spec(**fields: Any) -> CompileSpec:
    return CompileSpec.model_validate({"loss": "mse", **fields})


def layer(**arguments: Any) -> Dense:
    return Dense.model_validate({"type": "Dense", "units": 2, **arguments})


@pytest.mark.parametrize(
    ("written", "stored"),
    [("Adam", "adam"), ("SGD", "sgd"), ("RMSprop", "rmsprop"), ("Adagrad", "adagrad"), ("ADAMW", "adamw")],
)
def test_optimizer_class_names_are_stored_as_names(written: str, stored: str) -> None:
    assert compile_spec(optimizer=written).optimizer == stored


def test_loss_and_metric_class_names_and_abbreviations_are_stored_as_names() -> None:
    spec = compile_spec(loss="CategoricalCrossentropy", metrics=["AUC", "RootMeanSquaredError", "acc", "MSE"])
    assert spec.loss == "categorical_crossentropy"
    assert spec.metrics == ["auc", "root_mean_squared_error", "accuracy", "mse"]


def test_initializer_regularizer_and_constraint_aliases_are_stored_as_names() -> None:
    dense = layer(kernel_initializer="HeNormal", bias_initializer="zero", kernel_regularizer="l1l2",
                  kernel_constraint="MaxNorm", bias_constraint="NonNeg")  # fmt: skip
    assert (
        dense.kwargs().items()
        >= {
            "kernel_initializer": "he_normal",
            "bias_initializer": "zeros",
            "kernel_regularizer": "l1_l2",
            "kernel_constraint": "max_norm",
            "bias_constraint": "non_neg",
        }.items()
    )


def test_an_l1_l2_regularizer_by_name_builds() -> None:
    built = make_layer(layer(kernel_regularizer="l1_l2"))
    assert isinstance(built.kernel_regularizer, keras.regularizers.L1L2)


KINDS: dict[str, tuple[Kind, Any]] = {
    "optimizers": (optimization.OPTIMIZERS, keras.optimizers.get),
    "losses": (optimization.LOSSES, keras.losses.get),
    "metrics": (optimization.METRICS, keras.metrics.get),
    "initializers": (objects.INITIALIZERS, keras.initializers.get),
    "regularizers": (objects.REGULARIZERS, keras.regularizers.get),
    "constraints": (objects.CONSTRAINTS, keras.constraints.get),
}


@pytest.mark.parametrize("family", sorted(KINDS))
def test_every_alias_is_a_name_keras_itself_accepts(family: str) -> None:
    kind, keras_get = KINDS[family]
    compile_only = {"acc"}  # model.compile(metrics=["acc"]) takes it; keras.metrics.get does not
    for alias in set(kind.aliases) - compile_only:
        assert keras_get(alias) is not None, alias


def test_serialized_keras_objects_are_read_into_typed_arguments() -> None:
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9)
    spec = compile_spec(
        optimizer=keras.optimizers.serialize(keras.optimizers.SGD(schedule, momentum=0.5, nesterov=True)),
        loss=keras.saving.serialize_keras_object(keras.losses.CategoricalCrossentropy(label_smoothing=0.1)),
        metrics=[keras.saving.serialize_keras_object(keras.metrics.AUC(curve="PR"))],
    )
    stored = spec.model_dump(exclude_none=True)
    assert stored["optimizer"]["type"] == "SGD" and stored["optimizer"]["nesterov"] is True
    assert stored["optimizer"]["momentum"] == pytest.approx(0.5)
    assert stored["optimizer"]["learning_rate"] == {
        "type": "ExponentialDecay", "initial_learning_rate": pytest.approx(0.01), "decay_steps": 10,
        "decay_rate": pytest.approx(0.9), "staircase": False,
    }  # fmt: skip
    assert stored["loss"]["type"] == "CategoricalCrossentropy"
    assert stored["loss"]["label_smoothing"] == pytest.approx(0.1)
    assert stored["metrics"][0]["type"] == "AUC" and stored["metrics"][0]["curve"] == "PR"


def test_a_serialized_initializer_in_a_layer_is_read() -> None:
    dense = layer(kernel_initializer=keras.saving.serialize_keras_object(keras.initializers.HeNormal(seed=3)))
    assert dense.kwargs()["kernel_initializer"] == {"type": "HeNormal", "seed": 3}


def serialized_adam(**changes: Any) -> dict[str, Any]:
    return {**keras.optimizers.serialize(keras.optimizers.Adam()), **changes}


@pytest.mark.parametrize(
    ("optimizer", "says"),
    [
        (serialized_adam(module="mypackage.optimizers"), "must come from module 'keras.optimizers'"),
        (serialized_adam(registered_name="Custom>Adam"), "custom registered object"),
        (serialized_adam(config={"use_ema": True}), "use_ema=True is not supported"),
        (serialized_adam(config={"callback": "os.system"}), "Adam has no argument 'callback'"),
        (serialized_adam(class_name="Ftrl"), "unknown optimizer 'Ftrl'"),
    ],
)
def test_serialized_objects_outside_the_allowlist_are_refused(optimizer: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        compile_spec(optimizer=optimizer)


def test_a_mistyped_name_suggests_the_closest_names_only() -> None:
    with pytest.raises(ValueError) as caught:
        compile_spec(optimizer="adamm")
    assert "unknown optimizer 'adamm'; did you mean 'adam'" in str(caught.value)
    assert "lion" not in str(caught.value)


@pytest.mark.parametrize("activation", get_args(objects.ActivationNames))
def test_every_activation_name_is_one_keras_runs(activation: str) -> None:
    dense = make_layer(layer(activation=activation))
    assert dense(np.ones((2, 3), dtype="float32")).shape == (2, 2)
