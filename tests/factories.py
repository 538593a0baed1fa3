"""Test data builders: datasets on disk, job requests, and waiting on conditions."""

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def classification_arrays(
    rows: int = 64, features: int = 4, classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Separable-ish data: the label is the argmax of a fixed projection of the features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    weights = np.random.default_rng(99).normal(size=(features, classes)).astype(np.float32)
    return x, np.argmax(x @ weights, axis=1)


def csv_bytes(rows: int = 64, features: int = 4, classes: int = 3, labels: list[str] | None = None) -> bytes:
    """A CSV with columns f0..fN and a `label` column (class names when `labels` is given)."""
    x, y = classification_arrays(rows, features, classes)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"f{i}" for i in range(features)] + ["label"])
    for row, label in zip(x, y, strict=True):
        writer.writerow([f"{v:.4f}" for v in row] + [labels[label] if labels else int(label)])
    return out.getvalue().encode()


def write_csv(path: Path, **kwargs: Any) -> Path:
    path.write_bytes(csv_bytes(**kwargs))
    return path


def npz_bytes(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def mlp_layers(classes: int = 3, hidden: int = 8) -> list[dict[str, Any]]:
    return [
        {"type": "Dense", "units": hidden, "activation": "relu"},
        {"type": "Dense", "units": classes, "activation": "softmax"},
    ]


def job_request(dataset_id: str, **overrides: Any) -> dict[str, Any]:
    """A small, valid classification job for a `csv_bytes()` dataset."""
    request: dict[str, Any] = {
        "name": "test-mlp",
        "dataset_id": dataset_id,
        "model": {"layers": mlp_layers()},
        "compile": {
            "optimizer": "adam",
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 3, "batch_size": 16},
    }
    request.update(overrides)
    return request


def wait_for(
    condition: Callable[[], T | None],
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
