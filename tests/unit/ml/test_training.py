"""Training on stored arrays: per-epoch reports, cooperative stop, seeds, atomic saves."""

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from app.ml.data import load_arrays, save_arrays
from app.ml.spec import TrainingSpec
from app.ml.training import ProgressCallback, save_atomically, signature_of, train
from tests.factories import classification_arrays, mlp_layers

FEATURES = {"shape": [4], "dtype": "float32", "columns": ["a", "b", "c", "d"]}
TARGET = {"shape": [], "dtype": "int64", "columns": ["label"], "classes": [0, 1, 2], "n_classes": 3}


def stored_dataset(tmp_path: Path, rows: int = 64) -> Path:
    x, y = classification_arrays(rows=rows)
    save_arrays(tmp_path, x, y.astype(np.int64))
    return tmp_path


def spec(epochs: int = 3, seed: int | None = 7, loss: str = "sparse_categorical_crossentropy") -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {"layers": mlp_layers()},
            "compile": {"optimizer": "adam", "loss": loss, "metrics": ["accuracy"]},
            "fit": {"epochs": epochs, "batch_size": 16, "seed": seed, "validation_split": 0.25},
        }
    )


def test_every_epoch_is_reported_with_its_logs(tmp_path: Path) -> None:
    seen: list[tuple[int, dict]] = []
    result = train(
        spec(epochs=3),
        stored_dataset(tmp_path),
        FEATURES,
        TARGET,
        ProgressCallback(lambda e, logs: seen.append((e, logs))),
    )
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(seen[-1][1])
    assert result.epochs_run == 3 and result.final_logs == seen[-1][1]


def test_a_stop_request_ends_training_early(tmp_path: Path) -> None:
    progress: ProgressCallback

    def stop_after_first(epoch: int, _: dict) -> None:
        progress.request_stop()

    progress = ProgressCallback(stop_after_first)
    result = train(spec(epochs=50), stored_dataset(tmp_path), FEATURES, TARGET, progress)
    assert result.epochs_run == 1 and progress.stop_requested


def test_the_same_seed_gives_the_same_weights(tmp_path: Path) -> None:
    data = stored_dataset(tmp_path)
    first = train(spec(seed=3), data, FEATURES, TARGET, ProgressCallback(lambda *_: None)).model.get_weights()
    second = train(spec(seed=3), data, FEATURES, TARGET, ProgressCallback(lambda *_: None)).model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_integer_labels_are_one_hot_encoded_for_categorical_crossentropy(tmp_path: Path) -> None:
    arrays = load_arrays(stored_dataset(tmp_path), "categorical_crossentropy", n_classes=3)
    assert arrays.y.shape == (64, 3) and set(arrays.y.sum(axis=1)) == {1.0}
    result = train(spec(loss="categorical_crossentropy"), tmp_path, FEATURES, TARGET, ProgressCallback(lambda *_: None))
    assert result.epochs_run == 3


def test_a_saved_model_reloads_safely_and_predicts_the_same(tmp_path: Path) -> None:
    model = train(spec(), stored_dataset(tmp_path), FEATURES, TARGET, ProgressCallback(lambda *_: None)).model
    path = tmp_path / "out" / "model.keras"
    save_atomically(model, path)
    assert [p.name for p in path.parent.iterdir()] == ["model.keras"]  # no temp file left
    reloaded = keras.saving.load_model(path, safe_mode=True)
    x = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_allclose(model.predict_on_batch(x), reloaded.predict_on_batch(x), rtol=1e-6)
    assert signature_of(model)["inputs"][0]["shape"] == [-1, 4]


def test_a_graph_whose_inputs_take_columns_is_served_whole_rows(tmp_path: Path) -> None:
    graph = TrainingSpec.model_validate(
        {
            "model": {
                "inputs": [{"name": "wide", "columns": ["a", "b"]}, {"name": "deep", "columns": ["c", "d"]}],
                "layers": [
                    {"type": "Normalization", "name": "scaled", "inputs": ["deep"]},
                    {"type": "Dense", "name": "hidden", "units": 4, "activation": "relu"},
                    {"type": "Concatenate", "name": "joined", "inputs": ["wide", "hidden"]},
                    {"type": "Dense", "name": "out", "units": 3, "activation": "softmax"},
                ],
                "outputs": ["out"],
            },
            "compile": {"loss": "sparse_categorical_crossentropy"},
            "fit": {"epochs": 2, "batch_size": 16},
        }
    )
    model = train(graph, stored_dataset(tmp_path), FEATURES, TARGET, ProgressCallback(lambda *_: None)).model
    path = tmp_path / "graph.keras"
    save_atomically(model, path)
    reloaded = keras.saving.load_model(path, safe_mode=True)  # no custom or Lambda layers inside
    assert [tuple(t.shape) for t in reloaded.inputs] == [(None, 4)]
    rows = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_allclose(model.predict_on_batch(rows), reloaded.predict_on_batch(rows), rtol=1e-6)
    normalization = reloaded.get_layer("scaled")
    assert normalization.mean.shape[-1] == 2  # adapted on the "deep" columns only


def test_a_test_split_is_held_out_stratified_and_evaluated(tmp_path: Path) -> None:
    from app.ml.data import split_rows

    labels = np.array([0] * 80 + [1] * 20)  # sorted, imbalanced: a tail split would be all class 1
    split = split_rows(100, validation=0.1, test=0.2, seed=3, labels=labels)
    assert (len(split.train), len(split.validation), len(split.test)) == (70, 10, 20)
    assert np.bincount(labels[split.test]).tolist() == [16, 4]
    assert not set(split.train) & set(split.test) and not set(split.validation) & set(split.test)

    body = spec(epochs=2)
    body.fit.test_split = 0.25
    body.fit.class_weight = {0: 1.0, 1: 2.0, 2: 1.0}
    result = train(body, stored_dataset(tmp_path), FEATURES, TARGET, ProgressCallback(lambda *_: None))
    assert {"test_loss", "test_accuracy", "val_loss"} <= set(result.final_logs)


def test_text_columns_are_one_hot_encoded_and_numbers_standardized_inside_the_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 3, 64)  # codes into ["blue", "green", "red"]
    size = rng.normal(100, 20, 64)
    x = np.column_stack([size, colour]).astype(np.float32)
    save_arrays(tmp_path, x, (colour == 2).astype(np.int64))
    features = {
        "shape": [2],
        "dtype": "float32",
        "columns": ["size", "colour"],
        "column_types": [
            {"name": "size", "kind": "numeric", "vocabulary": None},
            {"name": "colour", "kind": "categorical", "vocabulary": ["blue", "green", "red"]},
        ],
    }
    target = {"shape": [], "dtype": "int64", "columns": ["label"], "classes": [0, 1], "n_classes": 2}
    body = TrainingSpec.model_validate(
        {
            "model": {"layers": [{"type": "Dense", "units": 2, "activation": "softmax"}]},
            "compile": {"loss": "sparse_categorical_crossentropy"},
            "fit": {"epochs": 1, "batch_size": 16},
            "preprocessing": {"standardize": True},
        }
    )
    model = train(body, tmp_path, features, target, ProgressCallback(lambda *_: None)).model

    # The first trained layer sees 1 standardized number + 3 one-hot columns.
    assert model.layers[-1].kernel.shape == (4, 2)
    standardize = model.get_layer("features_standardize")
    assert float(standardize.mean[0, 0]) == pytest.approx(float(size.mean()), rel=1e-3)
    path = tmp_path / "tabular.keras"
    save_atomically(model, path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict_on_batch(x[:3]), model.predict_on_batch(x[:3]), rtol=1e-5)


@pytest.mark.parametrize(
    ("policy", "rows", "fills"), [("drop", 1, None), ("mean", 3, [2.0, 4.5]), ({"constant": -1.0}, 3, [-1.0, -1.0])]
)
def test_empty_cells_are_dropped_or_filled_as_the_job_says(policy: Any, rows: int, fills: Any) -> None:
    from app.ml.data import apply_missing_policy
    from app.ml.spec import Preprocessing

    x = np.array([[1.0, 4.0], [np.nan, 5.0], [3.0, np.nan]], dtype=np.float32)
    chosen = Preprocessing.model_validate({"missing": policy}).missing
    filled, y, labels, fill_values = apply_missing_policy(x, np.arange(3), np.arange(3), chosen)
    assert labels is None or len(labels) == rows
    assert len(filled) == rows and len(y) == rows and not np.isnan(filled).any()
    assert fill_values == fills
