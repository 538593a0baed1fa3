"""Check a spec against a dataset before queueing: shapes, loss vs labels, model size, and the
metrics that callbacks and class weights name."""

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.ml.builder import as_graph, build_model
from app.ml.data import ONE_HOT_LOSSES, TabularInputs, bind_inputs, bind_outputs, one_hot
from app.ml.keras_names import did_you_mean
from app.ml.layers import Dense
from app.ml.objects import SpecModel
from app.ml.spec import SpecError, TrainingSpec

CLASS_INDEX_LOSSES = ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy")
# Losses that compare each output with a 0/1 (or -1/1) label.
BINARY_LOSSES = (
    "binary_crossentropy", "BinaryCrossentropy", "binary_focal_crossentropy", "BinaryFocalCrossentropy",
    "hinge", "squared_hinge",
)  # fmt: skip


def check_without_building(spec: TrainingSpec, features: dict[str, Any], target: dict[str, Any]) -> None:
    """The checks that need no built model: missing values, inputs and outputs against the
    dataset's columns and shapes, the loss against the labels, class weights. Cheap (no Keras)."""
    _check_missing_policy(spec, features)
    graph = as_graph(spec.model)
    bind_inputs(graph.inputs, features)
    outputs = bind_outputs(graph.output_specs, target) if graph.outputs else {}
    if len(outputs) <= 1:
        _check_loss_fits_target(spec, target)
    _check_class_weight(spec, target, len(outputs) <= 1)


def check_against_dataset(
    spec: TrainingSpec,
    features: dict[str, Any],
    target: dict[str, Any],
    max_params: int,
    max_activation_bytes: int | None = None,
) -> int:
    """Raise SpecError if the spec cannot train on this dataset; return the parameter count.

    Everything `check_without_building` checks, then builds the model (Keras, no data: the
    parameter and activation-memory caps are checked from shapes while it is built) and runs
    loss and metrics on two rows. Call it off the event loop.
    """
    check_without_building(spec, features, target)
    graph = as_graph(spec.model)
    inputs = bind_inputs(graph.inputs, features)
    outputs = bind_outputs(graph.output_specs, target) if graph.outputs else {}
    single_output = len(outputs) <= 1
    tabular = TabularInputs.of(inputs, features, spec.preprocessing.standardize)
    shapes: dict[str, Sequence[int]] = {name: b.shape for name, b in inputs.items()}
    built = build_model(spec, shapes, max_params, tabular, max_activation_bytes)
    if single_output:
        _check_output_fits_target(spec, built.model.outputs[0].shape, target)
    logged = _dry_run(built.model, features, outputs, spec, target)
    _check_monitors(spec, logged)
    return int(built.model.count_params())


def _dry_run(
    model: Any, features: dict[str, Any], outputs: dict[str, Any], spec: TrainingSpec, target: dict[str, Any]
) -> list[str]:
    """Evaluate loss and metrics on two rows shaped like the data, so a metric that cannot take
    these labels (AUC on class indices, say) is a 422 now, not a failed job later.

    Returns the names Keras logs each epoch (`loss`, `accuracy`, `price_loss`, ...)."""
    # Multi-input models without column selection are impossible (bind_inputs refuses them), so
    # the model always takes one array: rows shaped like the dataset's, or the input's own shape.
    shape = tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1 else tuple(features["shape"])
    x = np.zeros((2, *shape), dtype=np.float32)
    try:
        logs = model.test_on_batch(x, _sample_labels(outputs, spec, target), return_dict=True)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(
            "compile",
            f"the loss or a metric cannot take this dataset's labels (target shape {target['shape']}, "
            f"{target.get('n_classes') or 'no'} classes): {first_line}",
        ) from exc
    return list(logs)


def _check_monitors(spec: TrainingSpec, logged: list[str]) -> None:
    """Callbacks watch a name the model logs: `val_*` only exists with a validation split."""
    validating = spec.fit.validation_split > 0
    available = [*logged, *(f"val_{name}" for name in logged)] if validating else logged
    for field, callback in (
        ("early_stopping", spec.fit.early_stopping),
        ("reduce_lr_on_plateau", spec.fit.reduce_lr_on_plateau),
    ):
        if callback is None or callback.monitor in available:
            continue
        path = f"fit.{field}.monitor"
        monitor = callback.monitor
        if monitor.startswith("val_") and monitor[4:] in logged:
            raise SpecError(
                path,
                f"{monitor!r} is only logged with validation data; set fit.validation_split above 0 "
                f"or monitor {monitor[4:]!r}",
            )
        suggestion = did_you_mean(monitor, available)
        raise SpecError(
            path,
            f"the model does not log {monitor!r}; {suggestion + ' ' if suggestion else ''}"
            f"it logs: {', '.join(available)}",
        )


def _check_class_weight(spec: TrainingSpec, target: dict[str, Any], single_output: bool) -> None:
    weights = spec.fit.class_weight
    if not weights:
        return
    if not single_output:
        raise SpecError("fit.class_weight", "class weights work with one output; this model has several")
    classes = target.get("classes")
    if classes is None or target["shape"] != []:
        raise SpecError("fit.class_weight", "class weights need class labels, but the target is not a class column")
    n_classes = int(target["n_classes"])
    for label in weights:
        if not 0 <= label < n_classes:
            names = f" ({', '.join(repr(c) for c in classes)})" if isinstance(classes[0], str) else ""
            raise SpecError(
                f"fit.class_weight.{label}",
                f"there is no class {label}; the labels are 0 to {n_classes - 1}{names}",
            )


def _sample_labels(outputs: dict[str, Any], spec: TrainingSpec, target: dict[str, Any]) -> Any:
    if len(outputs) > 1:
        return {
            name: np.zeros((2, len(cols)) if len(cols) > 1 else (2,), dtype=np.float32)
            for name, cols in outputs.items()
        }
    is_class_index = target.get("classes") is not None and target["shape"] == []
    if is_class_index and loss_name(spec) in ONE_HOT_LOSSES and target.get("n_classes"):
        return one_hot(np.zeros(2, dtype=np.int64), int(target["n_classes"]))
    if is_class_index:
        return np.zeros(2, dtype=np.int64)
    return np.zeros((2, *target["shape"]), dtype=np.float32)


def _check_missing_policy(spec: TrainingSpec, features: dict[str, Any]) -> None:
    missing = features.get("missing")
    if not missing or spec.preprocessing.missing != "reject":
        return
    column, where = next(iter(missing.items()))
    others = f" (and {len(missing) - 1} more column(s))" if len(missing) > 1 else ""
    raise SpecError(
        "preprocessing.missing",
        f"column {column!r} has {where['count']} empty value(s), the first at {where['first']}{others}; "
        'choose what to do with them: "drop" the rows, fill with the column\'s "mean", or {"constant": 0}',
    )


def loss_name(spec: TrainingSpec) -> str:
    loss = spec.compile.loss
    if isinstance(loss, SpecModel):
        return str(loss.type)  # type: ignore[attr-defined]
    return loss if isinstance(loss, str) else ""


def _check_loss_fits_target(spec: TrainingSpec, target: dict[str, Any]) -> None:
    loss = loss_name(spec)
    is_class_index = target.get("classes") is not None and target["shape"] == []
    if loss in CLASS_INDEX_LOSSES and not is_class_index:
        raise SpecError(
            "compile.loss",
            f"{loss} needs integer class labels, but the dataset's target has dtype "
            f"{target['dtype']} and shape {target['shape']}; use a regression loss such as 'mse'",
        )
    n_classes = target.get("n_classes")
    if loss in BINARY_LOSSES and is_class_index and n_classes is not None and n_classes > 2:
        raise SpecError(
            "compile.loss",
            f"{loss} is for two classes (0/1 labels), but the target has {n_classes} classes; use "
            f"sparse_categorical_crossentropy with {n_classes} softmax units in the last layer",
        )
    if loss in ONE_HOT_LOSSES and target["shape"] == [] and not is_class_index:
        raise SpecError(
            "compile.loss",
            f"{loss} needs class labels (one-hot or integer), but the target is "
            f"continuous ({target['dtype']}); use a regression loss such as 'mse'",
        )


def _check_output_fits_target(spec: TrainingSpec, output_shape: Any, target: dict[str, Any]) -> None:
    graph = as_graph(spec.model)
    layers = graph.layers
    output_node = graph.output_specs[0].node if graph.outputs else None
    names = [layer.name for layer in layers]
    last = names.index(output_node) if output_node is not None and output_node in names else len(layers) - 1
    path = f"model.layers[{last}]" + (".units" if isinstance(layers[last], Dense) else "")
    units = output_shape[-1]
    loss = loss_name(spec)
    n_classes = target.get("n_classes")
    if loss in (*CLASS_INDEX_LOSSES, *ONE_HOT_LOSSES) and target["shape"] == []:
        if n_classes is not None and units != n_classes:
            beyond = f" (labels up to {n_classes - 1} index past its last unit)" if units < n_classes else ""
            raise SpecError(
                path,
                f"the output layer has {units} units but the labels have {n_classes} classes{beyond}; "
                f"use {n_classes} units",
            )
        return
    if len(output_shape) != len(target["shape"]) + 1 and not (len(output_shape) == 2 and target["shape"] == []):
        raise SpecError(
            path,
            f"the model outputs shape {list(output_shape[1:])} per sample but the target has shape "
            f"{target['shape'] or [1]}; flatten or pool before the output layer",
        )
    wanted = target["shape"][-1] if target["shape"] else 1
    if units != wanted:
        raise SpecError(
            path,
            f"the output has {units} values per sample but the target has {wanted}; "
            f"use {wanted} unit(s) in the last layer",
        )
