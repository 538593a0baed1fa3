"""Check a spec against a dataset before queueing: shapes, loss vs labels, model size."""

from collections.abc import Sequence
from typing import Any

from app.ml.builder import SpecError, build_model, count_params, input_shape_for
from app.ml.spec import Dense, TrainingSpec

CLASS_INDEX_LOSSES = ("sparse_categorical_crossentropy",)


def check_against_dataset(
    spec: TrainingSpec, features: dict[str, Any], target: dict[str, Any], max_params: int
) -> int:
    """Raise SpecError if the spec cannot train on this dataset; return the parameter count.

    Builds the model (Keras, no data): call it off the event loop.
    """
    feature_shape: Sequence[int] = features["shape"]
    input_shape = input_shape_for(spec.model, feature_shape)
    if list(input_shape) != list(feature_shape):
        raise SpecError(
            "model.input_shape",
            f"the model expects samples of shape {list(input_shape)} but the dataset's features "
            f"have shape {list(feature_shape)}",
        )
    _check_loss_fits_target(spec, target)
    model = build_model(spec, input_shape)
    params = count_params(model)
    if params > max_params:
        raise SpecError(
            "model", f"the model has {params:,} parameters, over the limit of {max_params:,}"
        )
    _check_output_fits_target(spec, model.outputs[0].shape, target)
    return params


def _check_loss_fits_target(spec: TrainingSpec, target: dict[str, Any]) -> None:
    loss = spec.compile.loss
    is_class_index = target.get("classes") is not None and target["shape"] == []
    if loss in CLASS_INDEX_LOSSES and not is_class_index:
        raise SpecError(
            "compile.loss",
            f"{loss} needs integer class labels, but the dataset's target has dtype "
            f"{target['dtype']} and shape {target['shape']}; use a regression loss such as 'mse'",
        )
    if loss == "categorical_crossentropy" and target["shape"] == [] and not is_class_index:
        raise SpecError(
            "compile.loss",
            "categorical_crossentropy needs class labels (one-hot or integer), but the target is "
            f"continuous ({target['dtype']}); use a regression loss such as 'mse'",
        )


def _check_output_fits_target(
    spec: TrainingSpec, output_shape: Sequence[int | None], target: dict[str, Any]
) -> None:
    last = len(spec.model.layers) - 1
    path = f"model.layers[{last}]" + (
        ".units" if isinstance(spec.model.layers[last], Dense) else ""
    )
    units = output_shape[-1]
    loss = spec.compile.loss
    n_classes = target.get("n_classes")
    if loss in (*CLASS_INDEX_LOSSES, "categorical_crossentropy") and target["shape"] == []:
        if n_classes is not None and units != n_classes:
            raise SpecError(
                path,
                f"the output layer has {units} units but the labels have {n_classes} classes; "
                f"use {n_classes} units",
            )
        return
    wanted = target["shape"][-1] if target["shape"] else 1
    if units != wanted:
        raise SpecError(
            path,
            f"the output has {units} values per sample but the target has {wanted}; "
            f"use {wanted} unit(s) in the last layer",
        )
