"""Check a spec against a dataset before queueing: shapes, loss vs labels, model size."""

from typing import Any

import numpy as np

from app.ml.builder import as_graph, build_model
from app.ml.data import ONE_HOT_LOSSES, TabularInputs, bind_inputs, bind_outputs, one_hot
from app.ml.layers import Dense
from app.ml.objects import SpecModel
from app.ml.spec import SpecError, TrainingSpec

CLASS_INDEX_LOSSES = ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy")


def check_against_dataset(spec: TrainingSpec, features: dict[str, Any], target: dict[str, Any], max_params: int) -> int:
    """Raise SpecError if the spec cannot train on this dataset; return the parameter count.

    Builds the model (Keras, no data): call it off the event loop.
    """
    _check_missing_policy(spec, features)
    graph = as_graph(spec.model)
    inputs = bind_inputs(graph.inputs, features)
    outputs = bind_outputs(graph.output_specs, target) if graph.outputs else {}
    single_output = len(outputs) <= 1
    if single_output:
        _check_loss_fits_target(spec, target)
    tabular = TabularInputs.of(inputs, features, spec.preprocessing.standardize)
    built = build_model(spec, {name: b.shape for name, b in inputs.items()}, max_params, tabular)
    if single_output:
        _check_output_fits_target(spec, built.model.outputs[0].shape, target)
    _dry_run(built.model, features, outputs, spec, target)
    return int(built.model.count_params())


def _dry_run(
    model: Any, features: dict[str, Any], outputs: dict[str, Any], spec: TrainingSpec, target: dict[str, Any]
) -> None:
    """Evaluate loss and metrics on two rows shaped like the data, so a metric that cannot take
    these labels (AUC on class indices, say) is a 422 now, not a failed job later."""
    # Multi-input models without column selection are impossible (bind_inputs refuses them), so
    # the model always takes one array: rows shaped like the dataset's, or the input's own shape.
    shape = tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1 else tuple(features["shape"])
    x = np.zeros((2, *shape), dtype=np.float32)
    try:
        model.test_on_batch(x, _sample_labels(outputs, spec, target))
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(
            "compile",
            f"the loss or a metric cannot take this dataset's labels (target shape {target['shape']}, "
            f"{target.get('n_classes') or 'no'} classes): {first_line}",
        ) from exc


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
            raise SpecError(
                path,
                f"the output layer has {units} units but the labels have {n_classes} classes; use {n_classes} units",
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
