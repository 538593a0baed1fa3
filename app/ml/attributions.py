"""Integrated gradients and saliency on `keras.ops`, for one-input, one-output Keras models.

Tabular models encode categorical columns inside the model with `CategoryEncoding` one-hots
(app/ml/tabular.py); a category code has no gradient, so categorical columns are explained in
their one-hot space: `explainable` cuts the model at those layers, making each one-hot an
input of its own, and a column's attribution is the sum over its encoded features.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from app.ml.gradients import value_and_gradients


class NotExplainable(ValueError):
    """The model or the request cannot be explained (the API answers 422 with the message)."""


# The name app/ml/tabular.py gives the one-hot of column `index` for graph input `name`.
ONE_HOT_LAYER = re.compile(r".+_column_(?P<index>\d+)_one_hot")


@dataclass(frozen=True)
class Explainable:
    """A model ready to explain: inputs `[rows, *one_hots]`, one-hot j encoding `columns[j]`."""

    model: Any  # keras.Model
    columns: tuple[int, ...]  # per one-hot input: the feature column it encodes
    widths: tuple[int, ...]  # per one-hot input: its number of categories


@dataclass(frozen=True)
class Attributions:
    """Per instance: the model's outputs, the explained unit and the attributions per feature
    (one-hots already folded into their columns), and the completeness error (IG only)."""

    outputs: np.ndarray  # (n, *output shape)
    targets: np.ndarray  # (n,)
    values: np.ndarray  # (n, *instance shape)
    deltas: np.ndarray | None  # (n,)


def load_explainable(path: Path) -> Explainable:
    """The `.keras` file at `path` (safe mode), ready to explain."""
    return explainable(keras.saving.load_model(path, safe_mode=True, compile=False))


def explainable(model: Any) -> Explainable:
    """Cut `model` at its one-hot encodings; NotExplainable for models explain cannot take."""
    if len(model.inputs) != 1:
        raise NotExplainable(f"explain takes models with one input; this one has {len(model.inputs)}")
    if len(model.outputs) != 1:
        raise NotExplainable(f"explain takes models with one output; this one has {len(model.outputs)}")
    if not str(model.inputs[0].dtype).startswith(("float", "bfloat")):
        raise NotExplainable(f"explain needs a float input to differentiate; this model takes {model.inputs[0].dtype}")
    encoders = [
        (int(match["index"]), layer)
        for layer in model.layers
        if isinstance(layer, keras.layers.CategoryEncoding) and (match := ONE_HOT_LAYER.fullmatch(layer.name))
    ]
    if not encoders:
        return Explainable(model, (), ())
    cut = keras.Model([model.inputs[0], *(layer.output for _, layer in encoders)], model.outputs)
    return Explainable(cut, tuple(i for i, _ in encoders), tuple(int(layer.num_tokens) for _, layer in encoders))


def one_hots(explainable_: Explainable, rows: np.ndarray) -> list[np.ndarray]:
    """The one-hot inputs of `rows` (codes in their categorical columns)."""
    return [
        np.eye(width, dtype="float32")[rows[:, column].astype(np.int64)]
        for column, width in zip(explainable_.columns, explainable_.widths, strict=True)
    ]


def explain(
    explainable_: Explainable,
    inputs: list[np.ndarray],
    baselines: list[np.ndarray],
    method: str,
    target: int | None,
    steps: int,
    batch: int = 256,
) -> Attributions:
    """Attributions of each row of `inputs` (`[rows, *one_hots]`, as `explainable` cut them).

    Args:
        baselines: like `inputs`, one row (broadcast to every instance).
        target: the flattened output unit to explain; None: each row's top unit (0 for one unit).
        batch: points of the integration path differentiated at once.
    """
    model = explainable_.model
    n = len(inputs[0])
    both = [np.concatenate([x, np.broadcast_to(b, x.shape)]) for x, b in zip(inputs, baselines, strict=True)]
    outputs = keras.ops.convert_to_numpy(model(both if len(both) > 1 else both[0], training=False))
    flat = outputs.reshape(len(outputs), -1)
    units = flat.shape[1]
    if target is not None and target >= units:
        raise NotExplainable(f"target: the model has {units} output units (0 to {units - 1}); got {target}")
    targets = np.full(n, target) if target is not None else np.argmax(flat[:n], axis=1)
    explained = np.take_along_axis(flat, np.concatenate([targets, targets])[:, None], axis=1)[:, 0]

    if method == "saliency":
        _, grads = value_and_gradients(_row_function(model, targets, units), [x.astype("float32") for x in inputs])
        return Attributions(outputs[:n], targets, _fold(explainable_, grads), None)

    # Gauss-Legendre points and weights on [0, 1] (numpy's): integrates the smooth part of the
    # path exactly at far fewer points than a Riemann sum.
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, weights = ((nodes + 1) / 2).astype("float32"), (weights / 2).astype("float32")
    # The path's points go through the model `batch` at a time: memory stays bounded by the
    # batch, whatever instances x steps the request asked for.
    averages = [np.zeros(x.shape, dtype="float32") for x in inputs]
    point_instance, point_step = np.divmod(np.arange(n * steps), steps)
    for start in range(0, n * steps, batch):
        which, step = point_instance[start : start + batch], point_step[start : start + batch]
        paths = []
        for x, b in zip(inputs, baselines, strict=True):
            alpha = alphas[step].reshape((-1,) + (1,) * (x.ndim - 1))
            paths.append((b + alpha * (x[which] - b)).astype("float32"))
        _, grads = value_and_gradients(_row_function(model, targets[which], units), paths)
        for average, grad in zip(averages, grads, strict=True):
            np.add.at(average, which, weights[step].reshape((-1,) + (1,) * (grad.ndim - 1)) * grad)
    integrated = [(x - b) * average for x, b, average in zip(inputs, baselines, averages, strict=True)]
    total = sum(a.reshape(n, -1).sum(axis=1) for a in integrated)
    deltas = total - (explained[:n] - explained[n:])
    return Attributions(outputs[:n], targets, _fold(explainable_, integrated), deltas)


def _row_function(model: Any, targets: np.ndarray, units: int) -> Any:
    """The explained output unit of each row, as a function of the model's inputs."""
    mask = np.eye(units, dtype="float32")[targets]

    def fn(tensors: list[Any]) -> Any:
        out = model(tensors if len(tensors) > 1 else tensors[0], training=False)
        out = keras.ops.reshape(keras.ops.cast(out, "float32"), (keras.ops.shape(out)[0], -1))
        return keras.ops.sum(out * mask, axis=1)

    return fn


def _fold(explainable_: Explainable, per_input: list[np.ndarray]) -> np.ndarray:
    """Attributions per feature: each one-hot's sum added to its column's."""
    values = np.array(per_input[0], dtype="float64")
    for column, attribution in zip(explainable_.columns, per_input[1:], strict=True):
        values[:, column] += attribution.sum(axis=1)
    return values
