"""Turn a validated spec into a compiled keras.Model. Only allowlisted classes are reachable."""

from collections.abc import Sequence
from typing import Any

import keras

from app.ml.spec import (
    L1,
    L1L2,
    L2,
    CompileSpec,
    Dense,
    LayerSpec,
    Regularizer,
    SequentialModel,
    TrainingSpec,
    layer_kwargs,
)

_REGULARIZER_FIELDS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer")


class SpecError(ValueError):
    """A spec that is well-formed but cannot work (shapes, sizes). `path` names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def input_shape_for(
    model_spec: SequentialModel, dataset_feature_shape: Sequence[int]
) -> tuple[int, ...]:
    """The per-sample input shape: from the spec when given, else from the dataset."""
    first = model_spec.layers[0]
    if model_spec.input_shape:
        return tuple(model_spec.input_shape)
    if isinstance(first, Dense) and first.input_shape:
        return tuple(first.input_shape)
    if isinstance(first, Dense) and first.input_dim:
        return (first.input_dim,)
    return tuple(dataset_feature_shape)


def build_model(spec: TrainingSpec, input_shape: Sequence[int]) -> keras.Model:
    """Build and compile the model. Raises SpecError naming the layer that does not fit."""
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = inputs
    for index, layer_spec in enumerate(spec.model.layers):
        path = f"model.layers[{index}]"
        layer = _make_layer(layer_spec)
        try:
            x = layer(x)
        except (ValueError, TypeError) as exc:
            raise SpecError(
                path,
                f"{layer_spec.type} cannot take input of shape {_shape(x.shape)}: "
                f"{_first_line(exc)}",
            ) from exc
    model = keras.Model(inputs=inputs, outputs=x, name="trainyard_model")
    _compile(model, spec.compile, spec.fit.steps_per_execution)
    return model


def count_params(model: keras.Model) -> int:
    return int(model.count_params())


def _make_layer(layer_spec: LayerSpec) -> keras.layers.Layer:
    kwargs = layer_kwargs(layer_spec)
    for field in _REGULARIZER_FIELDS:
        if field in kwargs:
            kwargs[field] = _regularizer(getattr(layer_spec, field))
    layer_class = getattr(keras.layers, layer_spec.type)  # type is a Literal of the allowlist
    return layer_class(**kwargs)


def _regularizer(spec: Regularizer) -> keras.regularizers.Regularizer | str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, L1):
        return keras.regularizers.L1(l1=spec.l1)
    if isinstance(spec, L2):
        return keras.regularizers.L2(l2=spec.l2)
    if isinstance(spec, L1L2):
        return keras.regularizers.L1L2(l1=spec.l1, l2=spec.l2)
    raise TypeError(f"unknown regularizer {spec!r}")


def _compile(model: keras.Model, spec: CompileSpec, steps_per_execution: int) -> None:
    optimizer: Any = spec.optimizer
    if not isinstance(optimizer, str):
        kwargs = optimizer.model_dump(exclude={"type"}, exclude_none=True)
        optimizer = getattr(keras.optimizers, optimizer.type)(**kwargs)
    model.compile(
        optimizer=optimizer,
        loss=spec.loss,
        metrics=list(spec.metrics),
        steps_per_execution=steps_per_execution,
    )


def _shape(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
