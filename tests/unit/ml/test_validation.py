"""Checks at the door: shapes, sizes, losses and metrics against the dataset, in sentences."""

from typing import Any

import pytest

from app.ml.spec import SpecError, TrainingSpec
from app.ml.validation import check_against_dataset

FLAT = {"shape": [64], "dtype": "float32", "columns": None}
IMAGES = {"shape": [8, 8, 1], "dtype": "uint8", "columns": None}
TABLE = {"shape": [4], "dtype": "float32", "columns": ["a", "b", "c", "d"]}
CLASSES = {"shape": [], "dtype": "int64", "columns": ["label"], "classes": [0, 1, 2], "n_classes": 3}
TWO_TARGETS = {"shape": [2], "dtype": "float32", "columns": ["price", "rating"], "classes": None, "n_classes": None}


def spec(
    model: dict[str, Any],
    loss: Any = "sparse_categorical_crossentropy",
    metrics: list[Any] | None = None,
    fit: dict[str, Any] | None = None,
) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {"model": model, "compile": {"loss": loss, "metrics": metrics or []}, "fit": fit or {}}
    )


def check(
    model: dict[str, Any], features: dict[str, Any] = FLAT, target: dict[str, Any] = CLASSES, **kwargs: Any
) -> int:
    return check_against_dataset(spec(model, **kwargs), features, target, max_params=10**7)


def error(
    model: dict[str, Any], features: dict[str, Any] = FLAT, target: dict[str, Any] = CLASSES, **kwargs: Any
) -> SpecError:
    with pytest.raises(SpecError) as caught:
        check(model, features, target, **kwargs)
    return caught.value


def test_conv2d_on_flat_features_says_what_arrived_and_what_it_needs() -> None:
    problem = error({"layers": [{"type": "Conv2D", "filters": 4, "kernel_size": 3}, {"type": "Dense", "units": 3}]})
    assert problem.path == "model.layers[0]"
    assert problem.message.startswith(
        "Conv2D needs input of rank 4 (batch, height, width, channels); it gets (batch, 64). Reshape the features"
    )


def test_a_cnn_on_image_arrays_passes() -> None:
    layers = [
        {"type": "Rescaling", "scale": 1 / 255},
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
        {"type": "MaxPooling2D"},
        {"type": "Flatten"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    ]
    assert check({"layers": layers}, IMAGES) > 0


def test_an_oversized_layer_is_refused_before_its_weights_exist() -> None:
    problem = error({"layers": [{"type": "Dense", "units": 100_000}, {"type": "Dense", "units": 1_000_000}]})
    assert problem.path == "model.layers[1]" and "over the limit of 10,000,000" in problem.message
    # Refused at layer 1 by the estimate: building it would have allocated 10^11 weights (400 GB).


def test_a_metric_that_cannot_take_class_indices_is_refused_at_the_door() -> None:
    layers = [{"type": "Dense", "units": 3, "activation": "softmax"}]
    problem = error({"layers": layers}, metrics=["auc"])
    assert problem.path == "compile" and "cannot take this dataset's labels" in problem.message


def test_categorical_crossentropy_on_class_labels_is_accepted_and_one_hot_encoded() -> None:
    assert check({"layers": [{"type": "Dense", "units": 3, "activation": "softmax"}]}, loss="categorical_crossentropy")


def test_a_loss_object_with_from_logits_is_accepted() -> None:
    loss = {"type": "SparseCategoricalCrossentropy", "from_logits": True}
    assert check({"layers": [{"type": "Dense", "units": 3}]}, loss=loss, metrics=["accuracy"])


def test_a_two_branch_graph_takes_feature_columns_per_input() -> None:
    graph = {
        "inputs": [{"name": "wide", "columns": ["a", "b"]}, {"name": "deep", "columns": ["c", "d"]}],
        "layers": [
            {"type": "Dense", "name": "deep_hidden", "units": 8, "activation": "relu", "inputs": ["deep"]},
            {"type": "Concatenate", "name": "joined", "inputs": ["wide", "deep_hidden"]},
            {"type": "Dense", "name": "out", "units": 3, "activation": "softmax"},
        ],
        "outputs": ["out"],
    }
    selections = 4 * 2 + 4 * 2  # frozen 0/1 matrices that pick each input's columns from a row
    assert check(graph, TABLE) == selections + 8 * 2 + 8 + 10 * 3 + 3


def test_an_unknown_input_column_is_named() -> None:
    graph = {
        "inputs": [{"name": "x", "columns": ["a", "nope"]}, {"name": "y", "columns": ["c"]}],
        "layers": [
            {"type": "Concatenate", "name": "j", "inputs": ["x", "y"]},
            {"type": "Dense", "name": "o", "units": 3},
        ],
        "outputs": ["o"],
    }
    problem = error(graph, TABLE)
    assert problem.path == "model.inputs[0].columns[1]" and "no feature column 'nope'" in problem.message


def test_two_outputs_map_to_target_columns() -> None:
    graph = {
        "inputs": [{"name": "x"}],
        "layers": [
            {"type": "Dense", "name": "hidden", "units": 8},
            {"type": "Dense", "name": "price", "units": 1, "inputs": ["hidden"]},
            {"type": "Dense", "name": "rating", "units": 1, "inputs": ["hidden"]},
        ],
        "outputs": [{"node": "price", "columns": ["price"]}, {"node": "rating", "columns": ["rating"]}],
    }
    assert check(graph, TABLE, TWO_TARGETS, loss={"price": "mse", "rating": "mae"}) > 0


def test_a_node_name_that_does_not_exist_is_named() -> None:
    graph = {
        "inputs": [{"name": "x"}],
        "layers": [{"type": "Dense", "name": "d", "units": 3, "inputs": ["y"]}],
        "outputs": ["d"],
    }
    problem = error(graph)
    assert problem.path == "model.layers[0].inputs[0]" and "no node named 'y'" in problem.message


def test_a_merge_layer_in_a_stack_points_to_the_graph_form() -> None:
    problem = error({"layers": [{"type": "Add"}, {"type": "Dense", "units": 3}]})
    assert "merges two or more nodes" in problem.message and "graph form" in problem.message


def test_a_recurrent_layer_on_flat_features_suggests_a_reshape() -> None:
    problem = error({"layers": [{"type": "LSTM", "units": 4}, {"type": "Dense", "units": 3}]})
    assert "LSTM needs input of rank 3 (batch, steps, channels); it gets (batch, 64)" in problem.message


SOFTMAX = {"layers": [{"type": "Dense", "units": 3, "activation": "softmax"}]}


def test_a_monitor_is_checked_against_what_the_model_logs() -> None:
    fit = {"validation_split": 0.2, "reduce_lr_on_plateau": {"monitor": "val_acc"}}
    problem = error(SOFTMAX, metrics=["accuracy"], fit=fit)
    assert problem.path == "fit.reduce_lr_on_plateau.monitor"
    assert problem.message == (
        "the model does not log 'val_acc'; did you mean 'val_accuracy'? it logs: accuracy, loss, val_accuracy, val_loss"
    )


def test_a_validation_metric_without_a_validation_split_says_how_to_get_one() -> None:
    problem = error(SOFTMAX, fit={"early_stopping": {"monitor": "val_loss"}})
    assert problem.path == "fit.early_stopping.monitor"
    assert "set fit.validation_split above 0 or monitor 'loss'" in problem.message


def test_each_output_of_a_graph_logs_its_own_loss_to_monitor() -> None:
    graph = {
        "inputs": [{"name": "x"}],
        "layers": [
            {"type": "Dense", "name": "price", "units": 1},
            {"type": "Dense", "name": "rating", "units": 1, "inputs": ["x"]},
        ],
        "outputs": [{"node": "price", "columns": ["price"]}, {"node": "rating", "columns": ["rating"]}],
    }
    fit = {"validation_split": 0.2, "early_stopping": {"monitor": "val_rating_loss"}}
    assert check(graph, TABLE, TWO_TARGETS, loss={"price": "mse", "rating": "mae"}, fit=fit) > 0


def test_a_class_weight_for_a_class_the_labels_do_not_have_is_refused() -> None:
    problem = error(SOFTMAX, fit={"class_weight": {0: 1.0, 5: 2.0}})
    assert problem.path == "fit.class_weight.5" and "the labels are 0 to 2" in problem.message


def test_a_binary_loss_on_more_than_two_classes_is_refused() -> None:
    sigmoid = {"layers": [{"type": "Dense", "units": 1, "activation": "sigmoid"}]}
    problem = error(sigmoid, loss="binary_crossentropy")
    assert problem.path == "compile.loss" and "the target has 3 classes" in problem.message


def test_a_sparse_loss_on_labels_past_the_last_unit_is_refused() -> None:
    problem = error({"layers": [{"type": "Dense", "units": 2, "activation": "softmax"}]})
    assert problem.path == "model.layers[0].units" and "labels up to 2 index past its last unit" in problem.message
