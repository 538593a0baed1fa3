"""Every catalog entry builds and trains one step on tiny data, through the worker's own path."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.ml.data import save_arrays
from app.ml.layers import LAYER_CLASSES
from app.ml.spec import TrainingSpec
from app.ml.training import ProgressCallback, train
from tests.unit.ml.catalog_examples import LAYER_EXAMPLES, MERGE_EXAMPLES, OPTIMIZERS

ROWS = 8


def regression_data(tmp_path: Path, shape: tuple[int, ...], integers: bool = False) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    x = (
        rng.integers(0, 10, size=(ROWS, *shape)).astype(np.float32)
        if integers
        else rng.random((ROWS, *shape), dtype=np.float32)
    )
    save_arrays(tmp_path, x, rng.random(ROWS, dtype=np.float32))
    features = {"shape": list(shape), "dtype": "float32", "columns": None}
    target = {"shape": [], "dtype": "float32", "columns": None, "classes": None, "n_classes": None}
    return features, target


def fit_one_epoch(
    tmp_path: Path, model: dict[str, Any], shape: tuple[int, ...], optimizer: Any = "adam", **data: Any
) -> float:
    features, target = regression_data(tmp_path, shape, **data)
    spec = TrainingSpec.model_validate(
        {"model": model, "compile": {"optimizer": optimizer, "loss": "mse"}, "fit": {"epochs": 1, "batch_size": 4}}
    )
    result = train(spec, tmp_path, features, target, ProgressCallback(lambda *_: None))
    assert result.epochs_run == 1
    return float(result.final_logs["loss"])


def test_every_catalog_layer_has_an_example() -> None:
    assert set(LAYER_CLASSES) - {"Call"} == set(LAYER_EXAMPLES) | set(MERGE_EXAMPLES)


@pytest.mark.parametrize("layer_type", sorted(LAYER_EXAMPLES))
def test_each_layer_trains_one_epoch_in_a_stack(tmp_path: Path, layer_type: str) -> None:
    arguments, shape = LAYER_EXAMPLES[layer_type]
    layers = [{"type": layer_type, **arguments}, {"type": "Flatten"}, {"type": "Dense", "units": 1}]
    loss = fit_one_epoch(tmp_path, {"layers": layers}, shape, integers=layer_type == "Embedding")
    assert np.isfinite(loss)


@pytest.mark.parametrize("merge_type", sorted(MERGE_EXAMPLES))
def test_each_merge_layer_joins_two_branches(tmp_path: Path, merge_type: str) -> None:
    graph = {
        "inputs": [{"name": "x"}],
        "layers": [
            {"type": "Dense", "name": "left", "units": 3, "inputs": ["x"]},
            {"type": "Dense", "name": "right", "units": 3, "inputs": ["x"]},
            {"type": merge_type, "name": "merged", "inputs": ["left", "right"], **MERGE_EXAMPLES[merge_type]},
            {"type": "Dense", "name": "out", "units": 1},
        ],
        "outputs": ["out"],
    }
    assert np.isfinite(fit_one_epoch(tmp_path, graph, (4,)))


def test_a_shared_layer_and_a_residual_connection(tmp_path: Path) -> None:
    graph = {
        "inputs": [{"name": "x"}],
        "layers": [
            {"type": "Dense", "name": "shared", "units": 4},
            {"type": "Call", "name": "again", "layer": "shared", "inputs": ["shared"]},
            {"type": "Add", "name": "residual", "inputs": ["x", "again"]},
            {"type": "Dense", "name": "out", "units": 1},
        ],
        "outputs": ["out"],
    }
    assert np.isfinite(fit_one_epoch(tmp_path, graph, (4,)))


@pytest.mark.parametrize(
    "optimizer",
    OPTIMIZERS,
    ids=lambda o: o if isinstance(o, str) else o.get("type", f"serialized-{o.get('class_name')}"),
)
def test_each_optimizer_trains(tmp_path: Path, optimizer: Any) -> None:
    layers = [{"type": "Dense", "units": 4, "activation": "relu"}, {"type": "Dense", "units": 1}]
    assert np.isfinite(fit_one_epoch(tmp_path, {"layers": layers}, (4,), optimizer=optimizer))
