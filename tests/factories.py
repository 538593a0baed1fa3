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


def seed_mlp(features: int = 100, classes: int = 10, hidden: int = 64, seed: int = 0) -> Any:
    """The seed MLP (features → hidden relu → hidden relu → classes softmax), untrained."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(features,), name="features")
    x = keras.layers.Dense(hidden, activation="relu")(inputs)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs)


def two_input_model(seed: int = 0) -> Any:
    """Inputs `a` (3 floats) and `b` (2 int32s); outputs `scores` (2) and `value` (1)."""
    import keras

    keras.utils.set_random_seed(seed)
    a = keras.Input(shape=(3,), name="a")
    b = keras.Input(shape=(2,), name="b", dtype="int32")
    joined = keras.layers.Concatenate()([a, keras.ops.cast(b, "float32")])
    scores = keras.layers.Dense(2, activation="softmax", name="scores")(joined)
    value = keras.layers.Dense(1, name="value")(joined)
    return keras.Model({"a": a, "b": b}, {"scores": scores, "value": value})


def register_version(settings: Any, name: str, model: Any, onnx: bool = True) -> int:
    """Register `model` as the next version of `name`, as the worker does (without training):
    a succeeded job, model.keras, and model.onnx unless `onnx` is False. Returns the version."""
    import uuid

    from app.db.session import session_scope
    from app.jobs.repository import next_version
    from app.ml.export import RUNTIME_KERAS, export_for_serving, serving_signature
    from app.ml.training import save_atomically
    from app.models import Job, JobStatus, ModelVersion

    job_id = uuid.uuid4().hex
    relative = Path("jobs") / job_id / "attempt-1" / "model.keras"
    save_atomically(model, settings.artifacts_dir / relative)
    if onnx:
        serving = export_for_serving(model, settings.artifacts_dir / relative.with_name("model.onnx"))
        runtime, signature, check = serving.runtime, serving.signature, serving.check
    else:
        runtime, signature, check = RUNTIME_KERAS, serving_signature(model), {}
    with session_scope(settings.sqlalchemy_url) as session:
        version = next_version(session, name)
        session.add(
            Job(
                id=job_id,
                name=name,
                status=JobStatus.SUCCEEDED,
                dataset_id="none",
                spec={},
                register_as=name,
                queue="training",
                request_hash="0" * 64,
                epochs=1,
                attempt=1,
                model_name=name,
                model_version=version,
            )
        )
        session.flush()
        session.add(
            ModelVersion(
                name=name,
                version=version,
                job_id=job_id,
                artifact_path=str(relative),
                signature=dict(signature, classes=None),
                serving_runtime=runtime,
                serving_path=str(relative.with_name("model.onnx")) if runtime == "onnx" else None,
                serving_check=check,
            )
        )
    return int(version)
