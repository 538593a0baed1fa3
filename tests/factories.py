"""Test data builders: datasets on disk, job requests, and waiting on conditions."""

import csv
import io
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from app.datasets.parsing import ParseOptions, parse_file
from app.datasets.schema import ParseLimits, StoredDataset

T = TypeVar("T")


def classification_arrays(
    rows: int = 64, features: int = 4, classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Separable-ish data: the label is the argmax of a fixed projection of the features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    weights = np.random.default_rng(99).normal(size=(features, classes)).astype(np.float32)
    return x, np.argmax(x @ weights, axis=1)


def csv_bytes(
    rows: int = 64,
    features: int = 4,
    classes: int = 3,
    labels: list[str] | None = None,
    seed: int = 0,
    delimiter: str = ",",
) -> bytes:
    """A CSV with columns f0..fN and a `label` column (class names when `labels` is given)."""
    x, y = classification_arrays(rows, features, classes, seed)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
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


def mixed_columns() -> dict[str, list[Any]]:
    """Six rows: a numeric feature, a text feature with a missing value, a text label."""
    return {
        "size": [1.5, 2.0, 3.25, 4.0, 5.5, 6.0],
        "colour": ["red", "blue", None, "red", "green", "blue"],
        "kind": ["cat", "dog", "cat", "dog", "cat", "cat"],
    }


def parquet_bytes(columns: dict[str, list[Any]], row_group_size: int | None = None) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out, row_group_size=row_group_size)
    return out.getvalue()


def jsonl_bytes(columns: dict[str, list[Any]]) -> bytes:
    """One JSON object per line, keys in column order (a None value is written as null)."""
    names = list(columns)
    rows = zip(*(columns[name] for name in names), strict=True)
    return b"".join(json.dumps(dict(zip(names, row, strict=True))).encode() + b"\n" for row in rows)


def csv_from_columns(columns: dict[str, list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(zip(*columns.values(), strict=True))
    return out.getvalue().encode()


def image_bytes(
    colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (12, 10), fmt: str = "PNG"
) -> bytes:
    """A solid `colour` image, `size` = (width, height) as Pillow counts."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def image_zip_bytes(per_class: dict[str, int] | None = None, prefix: str = "") -> bytes:
    """A ZIP of small images in class folders (PNG and JPEG alternating), `prefix/class/i.png`."""
    per_class = per_class or {"cat": 3, "dog": 2}
    members = {}
    for index, (label, count) in enumerate(sorted(per_class.items())):
        for i in range(count):
            fmt, suffix = ("PNG", "png") if i % 2 == 0 else ("JPEG", "jpg")
            colour = (40 * index, 10 * i, 200)
            members[f"{prefix}{label}/{i}.{suffix}"] = image_bytes(colour, fmt=fmt)
    return zip_bytes(members)


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


def register_version(settings: Any, name: str, model: Any, onnx: bool = True, project: str = "default") -> int:
    """Register `model` as the next version of `name` in `project`, as the worker does (without
    training): a succeeded job, model.keras, and model.onnx unless `onnx` is False. Returns the version."""
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
                project=project,
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
                project=project,
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


LIMITS = ParseLimits(max_columns=10_000, max_categories=1_000, max_archive_files=1_000, max_unpacked_bytes=10**8)


def store_upload(
    tmp_path: Path, filename: str, data: bytes, limits: ParseLimits = LIMITS, **fields: str
) -> tuple[StoredDataset, Path]:
    """Parse `data` as an upload named `filename` with these form fields, as ingest does;
    returns what was recorded and the directory holding features.npy and target.npy."""
    source = tmp_path / filename
    source.write_bytes(data)
    directory = tmp_path / "stored"
    directory.mkdir()
    options = ParseOptions.from_form(filename, fields)
    return parse_file(source, options, limits, directory), directory


def stored_arrays(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(directory / "features.npy"), np.load(directory / "target.npy")


def job_row(**values: Any) -> Any:
    """A `Job` row (queued on `training` unless `values` say otherwise), not yet added."""
    from app.models import Job

    fields: dict[str, Any] = {
        "name": "j",
        "dataset_id": "none",
        "spec": {},
        "register_as": "m",
        "queue": "training",
        "request_hash": "0" * 64,
        "epochs": 1,
    }
    return Job(**{**fields, **values})


def worker_row(
    name: str,
    queues: str,
    last_seen_at: Any,
    stopping: bool = False,
    devices: list[str] | None = None,
    per_job: int = 1,
) -> Any:
    """A `Worker` row as a worker's main process reports itself, not yet added; `devices` as it
    advertises them (None: not known), `per_job` of them to each job."""
    from app.models import Worker

    return Worker(
        name=name,
        hostname="test",
        pid=1,
        queues=queues,
        stopping=stopping,
        last_seen_at=last_seen_at,
        devices=devices,
        devices_per_job=per_job if devices is not None else None,
    )
