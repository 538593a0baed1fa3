"""Fit a spec'd model on stored arrays, report each epoch, save the result atomically."""

import math
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from app.ml.builder import as_graph, build_model
from app.ml.data import (
    TabularInputs,
    apply_missing_policy,
    bind_inputs,
    bind_outputs,
    load_arrays,
    model_targets,
    split_rows,
    take,
)
from app.ml.spec import TrainingSpec
from app.ml.validation import loss_name

# Normalization layers are adapted on at most this many rows (mean and variance converge fast).
ADAPT_ROWS = 100_000

EpochHook = Callable[[int, dict[str, float | str]], None]


class ProgressCallback(keras.callbacks.Callback):
    """Hands each finished epoch's logs to `on_epoch`, and stops training when asked.

    `request_stop` may be called from another thread (the worker's heartbeat): Keras reads
    `model.stop_training` after every batch, so a cancel takes effect within one batch.
    No per-batch hook: a per-batch database write halves fit throughput (DESIGN.md).

    Args:
        on_epoch: called with the 1-based epoch number and that epoch's logs as floats.
    """

    def __init__(self, on_epoch: EpochHook) -> None:
        super().__init__()
        self._on_epoch = on_epoch
        self._stop_requested = threading.Event()

    def request_stop(self) -> None:
        self._stop_requested.set()
        if self.model is not None:
            self.model.stop_training = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # fit() resets stop_training at its start; a stop asked for before then still counts.
        if self.stop_requested:
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._on_epoch(epoch + 1, finite_floats(logs or {}))
        if self.stop_requested:
            self.model.stop_training = True


@dataclass
class TrainingResult:
    model: keras.Model
    epochs_run: int
    final_logs: dict[str, float | str] = field(default_factory=dict)
    # Per feature column, the value empty cells were filled with (preprocessing.missing).
    fill_values: list[float] | None = None


def train(
    spec: TrainingSpec,
    dataset_dir: Path,
    features: dict[str, Any],
    target: dict[str, Any],
    progress: ProgressCallback,
) -> TrainingResult:
    """Build the model from `spec` and fit it on the dataset stored in `dataset_dir`.

    Args:
        features: the dataset's feature schema (shape, columns); target: its target schema.
    """
    if spec.fit.seed is not None:
        keras.utils.set_random_seed(spec.fit.seed)
    graph = as_graph(spec.model)
    inputs = bind_inputs(graph.inputs, features)
    outputs = bind_outputs(graph.output_specs, target) if graph.outputs else {}
    tabular = TabularInputs.of(inputs, features, spec.preprocessing.standardize)
    built = build_model(spec, {name: binding.shape for name, binding in inputs.items()}, tabular=tabular)
    arrays = load_arrays(dataset_dir, loss_name(spec), target.get("n_classes") if len(outputs) <= 1 else None)
    # Whole rows, memory-mapped (inputs that take columns select them inside the model); copied
    # only when empty cells must be dropped or filled.
    rows, targets, labels, fill_values = arrays.x, model_targets(arrays.y, outputs), arrays.class_labels, None
    if features.get("missing"):  # the dataset's schema says so: no pass over clean data
        rows, targets, labels, fill_values = apply_missing_policy(rows, targets, labels, spec.preprocessing.missing)
    x, y = rows, targets
    for layer, source in built.to_adapt:  # in order: one adapted layer may feed the next
        sample = keras.Model(built.model.inputs, source)(np.asarray(x[:ADAPT_ROWS]))
        layer.adapt(keras.ops.convert_to_numpy(sample))
    split = None
    validation_data = None
    if spec.fit.validation_split or spec.fit.test_split:
        # Our own seeded (and, for classes, stratified) split: Keras's validation_split takes the
        # last rows as they are, which on a sorted file is one class. Copies the rows it takes.
        stratify_by = labels if len(outputs) <= 1 else None
        split = split_rows(len(x), spec.fit.validation_split, spec.fit.test_split, spec.fit.seed or 0, stratify_by)
        if len(split.validation):
            validation_data = (take(x, split.validation), take(y, split.validation))
        x, y = take(x, split.train), take(y, split.train)
    history = built.model.fit(
        x,
        y,
        epochs=spec.fit.epochs,
        batch_size=spec.fit.batch_size,
        validation_data=validation_data,
        shuffle=spec.fit.shuffle,
        class_weight=spec.fit.class_weight,
        callbacks=[progress, *_fit_callbacks(spec)],
        verbose=0,
    )
    model = built.model
    logs = {name: values[-1] for name, values in history.history.items() if values}
    if split is not None and len(split.test):
        evaluated = model.evaluate(take(rows, split.test), take(targets, split.test), return_dict=True, verbose=0)
        logs |= {f"test_{name}": value for name, value in evaluated.items()}
    return TrainingResult(
        model=model, epochs_run=len(history.epoch), final_logs=finite_floats(logs), fill_values=fill_values
    )


def _fit_callbacks(spec: TrainingSpec) -> list[keras.callbacks.Callback]:
    callbacks: list[keras.callbacks.Callback] = []
    if spec.fit.early_stopping is not None:
        callbacks.append(keras.callbacks.EarlyStopping(**spec.fit.early_stopping.model_dump()))
    if spec.fit.reduce_lr_on_plateau is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(**spec.fit.reduce_lr_on_plateau.model_dump()))
    return callbacks


def save_atomically(model: keras.Model, path: Path) -> None:
    """Write `path` so that readers see either no file or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp.keras")  # Keras insists on the suffix
    try:
        model.save(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def signature_of(model: keras.Model) -> dict[str, Any]:
    """Input and output names, shapes and dtypes, as predict and metadata report them."""

    def describe(tensors: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": t.name,
                "shape": [d if d is not None else -1 for d in t.shape],
                "dtype": str(t.dtype),
            }
            for t in keras.tree.flatten(tensors)
        ]

    return {"inputs": describe(model.inputs), "outputs": describe(model.outputs)}


def finite_floats(logs: dict[str, Any]) -> dict[str, float | str]:
    """Logs as plain floats; NaN and infinity become "nan"/"inf" (JSON has no literal for them)."""
    out: dict[str, float | str] = {}
    for name, value in logs.items():
        number = float(value)
        out[name] = number if math.isfinite(number) else str(number)
    return out
