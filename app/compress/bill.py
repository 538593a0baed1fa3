"""`measure_bill`: what a registered-to-be version costs and how well it does, in one run.

Used by compression jobs (app.compress.runner) for the compressed version and its source alike,
and distillation jobs (the student, app.jobs.runner): the same held-out rows, the same serving
runtime the version will be served by, the same machine and moment, so two bills compare.
"""

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.compress.schemas import Bill, LatencyMs
from app.ml.spec import TrainingSpec
from app.serving.runtimes import open_runtime
from app.serving.signature import ServedVersion

LATENCY_ROWS = (1, 64)
LATENCY_REPEATS = 30  # calls timed per size, after warm-up calls; the median is reported
WARM_UP_CALLS = 5
EVAL_BATCH = 256


@dataclass(frozen=True)
class HeldOut:
    """Rows of a version's dataset that its training did not fit, with the fit's own rows.

    `x`/`y` are the held-out rows (test split, else validation); `train_x`/`train_y` the rows the
    source trained on (a pruning fine-tune trains on these: the held-out rows stay unseen)."""

    x: np.ndarray
    y: Any
    labels: np.ndarray | None  # class indexes of the held-out rows, for accuracy
    split: str  # "test" or "validation"
    train_x: np.ndarray
    train_y: Any


def held_out_split(spec: TrainingSpec, dataset_dir: Path, features: dict[str, Any], target: dict[str, Any]) -> HeldOut:
    """The source job's own split, re-made as `app.ml.training.train` made it (same seed, same
    stratification, same missing-value policy), so the rows are the ones it held out."""
    # Keras: in the worker's child only (this module is imported where Keras must not be).
    from app.ml.builder import as_graph
    from app.ml.data import apply_missing_policy, bind_outputs, load_arrays, model_targets, split_rows, take
    from app.ml.validation import loss_name

    graph = as_graph(spec.model)
    outputs = bind_outputs(graph.output_specs, target) if graph.outputs else {}
    arrays = load_arrays(dataset_dir, loss_name(spec), target.get("n_classes") if len(outputs) <= 1 else None)
    rows, targets, labels = arrays.x, model_targets(arrays.y, outputs), arrays.class_labels
    if features.get("missing"):
        rows, targets, labels, _ = apply_missing_policy(rows, targets, labels, spec.preprocessing.missing)
    stratify_by = labels if len(outputs) <= 1 else None
    split = split_rows(len(rows), spec.fit.validation_split, spec.fit.test_split, spec.fit.seed or 0, stratify_by)
    held, name = (split.test, "test") if len(split.test) else (split.validation, "validation")
    if not len(held):  # the source held nothing out: its bill is measured on its training rows
        held, name = split.train, "validation"
    return HeldOut(
        x=take(rows, held),
        y=take(targets, held),
        labels=None if labels is None else np.asarray(labels[held]),
        split=name,
        train_x=take(rows, split.train),
        train_y=take(targets, split.train),
    )


def measure_bill(model: Any, served: ServedVersion, keras_path: Path, held_out: HeldOut | None) -> Bill:
    """The bill of one version.

    Args:
        model: the Keras model (its parameter count; what `keras_path` holds).
        served: the version as serving will run it (runtime and artifact path): latency and
            metrics come from that runtime, so an int8 ONNX file is measured as served.
        keras_path: the saved .keras file.
        held_out: the source's held-out rows; None when its dataset is gone (metrics empty).
    """
    runtime = open_runtime(served)
    spec = served.inputs[0]
    return Bill(
        params=int(model.count_params()),
        artifact_bytes=served.path.stat().st_size,
        keras_bytes=keras_path.stat().st_size,
        runtime=served.runtime,
        latency_ms=LatencyMs(**{f"rows_{n}": _latency_ms(runtime, served, n) for n in LATENCY_ROWS}),
        metrics=_metrics(runtime, held_out, np.dtype(spec.dtype))
        if held_out is not None and _one_tensor(served)
        else {},
        split="none" if held_out is None else held_out.split,  # type: ignore[arg-type]
        rows=0 if held_out is None else len(held_out.x),
    )


def _one_tensor(served: ServedVersion) -> bool:
    return len(served.inputs) == 1 and len(served.outputs) == 1


def _latency_ms(runtime: Any, served: ServedVersion, rows: int) -> float:
    rng = np.random.default_rng(0)
    batch = [
        rng.normal(size=(rows, *[d if d > 0 else 1 for d in spec.shape[1:]])).astype(spec.dtype)
        for spec in served.inputs
    ]
    for _ in range(WARM_UP_CALLS):
        runtime.run(batch)
    times = []
    for _ in range(LATENCY_REPEATS):
        started = time.perf_counter()
        runtime.run(batch)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 4)


def _metrics(runtime: Any, held_out: HeldOut, dtype: np.dtype[Any]) -> dict[str, float]:
    """Accuracy for class labels; mse and mae otherwise, from the runtime's own outputs."""
    outputs = [
        runtime.run([np.asarray(held_out.x[i : i + EVAL_BATCH], dtype=dtype)])[0]
        for i in range(0, len(held_out.x), EVAL_BATCH)
    ]
    predicted = np.concatenate(outputs).astype(np.float64)
    if held_out.labels is not None:
        if predicted.ndim == 2 and predicted.shape[1] > 1:
            chosen = predicted.argmax(axis=1)
        else:
            chosen = (predicted.reshape(-1) > 0.5).astype(np.int64)
        return {"accuracy": round(float(np.mean(chosen == held_out.labels)), 6)}
    truth = np.asarray(held_out.y, dtype=np.float64).reshape(predicted.shape)
    error = predicted - truth
    return {"mse": round(float(np.mean(error**2)), 6), "mae": round(float(np.mean(np.abs(error))), 6)}
