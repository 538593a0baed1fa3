"""Gradient health (the tutorial's FAQ 8, vanishing and exploding gradients): once per epoch, the
global gradient norm and the share of non-finite gradient values on one sampled batch; and a
NaN/Inf loss ends the job with advice instead of training on garbage.

Sampled per epoch, not per batch: reading every step's gradients out of a compiled (and grouped,
`steps_per_execution`) train step would cost a device sync per batch (bench/RESULTS.md,
"Distillation and gradient health"). The sample is one extra forward and backward pass on the
first `batch_size` training rows, at the epoch's end weights, computed statelessly: no weights,
BatchNormalization statistics, RNG or metrics state change, so the run trains exactly as without it.
"""

import logging
import math
from typing import Any

import keras
import numpy as np

from app.ml.spec import TrainingSpec

log = logging.getLogger(__name__)

GRAD_NORM = "grad_norm"
GRAD_NONFINITE = "grad_nonfinite"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: training cannot recover; the message says what to try."""


class GradientHealth(keras.callbacks.Callback):
    """Adds `grad_norm` and `grad_nonfinite` to each epoch's logs (before the epoch is recorded).

    Args:
        x, y: a sample batch of training rows and their targets (host arrays).
    """

    def __init__(self, x: Any, y: Any) -> None:
        super().__init__()
        self._x = x
        self._y = y
        self.supported = keras.backend.backend() in ("tensorflow", "jax", "torch")
        self._cache: dict[str, Any] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None or not self.supported:
            return
        try:
            norm, nonfinite = gradient_health(self.model, self._x, self._y, self._cache)
        except Exception:  # a diagnostic: a model it cannot differentiate here still trains
            log.warning("gradient health could not be sampled; the job goes on without it", exc_info=True)
            self.supported = False
            return
        logs[GRAD_NORM] = norm
        logs[GRAD_NONFINITE] = nonfinite


class DivergenceGuard(keras.callbacks.Callback):
    """Raises TrainingDiverged at the end of an epoch whose loss is NaN or infinite (after the
    epoch was recorded, before it is checkpointed)."""

    def __init__(self, spec: TrainingSpec) -> None:
        super().__init__()
        self._spec = spec

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        raise TrainingDiverged(divergence_message(self._spec, epoch + 1, float(loss), logs or {}))


def divergence_message(spec: TrainingSpec, epoch: int, loss: float, logs: dict[str, Any]) -> str:
    """Why the job failed and the fixes the spec offers, most direct first."""
    norm = logs.get(GRAD_NORM)
    share = logs.get(GRAD_NONFINITE)
    seen = ""
    if norm is not None:
        seen = f" (sampled gradient norm {_number(norm)}, {_number(100 * float(share or 0))}% non-finite values)"
    optimizer: Any = spec.compile.optimizer
    rate = getattr(optimizer, "learning_rate", 0.001 if isinstance(optimizer, str) else None)
    lower = (
        f"a lower learning rate (compile.optimizer.learning_rate, now {rate})"
        if isinstance(rate, float)
        else ("a lower learning rate (compile.optimizer.learning_rate)")
    )
    if isinstance(optimizer, str):
        lower = f'a lower learning rate (compile.optimizer: {{"type": "{optimizer}", "learning_rate": 0.0001}})'
    fixes = [
        "gradient clipping (compile.optimizer.clipnorm, e.g. 1.0)",
        lower,
        'BatchNormalization layers ({"type": "BatchNormalization"}) before the activations',
    ]
    if not spec.preprocessing.standardize:
        fixes.append("preprocessing.standardize: true for numeric columns on large scales")
    return (
        f"the training loss became {loss} in epoch {epoch}{seen}: the gradients exploded and training "
        f"stopped instead of going on with broken weights. Try: {'; '.join(fixes)}"
    )


def gradient_health(model: keras.Model, x: Any, y: Any, cache: dict[str, Any] | None = None) -> tuple[float, float]:
    """The global L2 norm of the loss's gradient on (x, y) and the share of gradient values that
    are NaN or infinite, without changing any of the model's state. `cache` keeps the compiled
    gradient function between calls (JAX: compiling op by op each epoch would cost seconds;
    TensorFlow: traced once, ~1 ms a call instead of ~25 ms eagerly); without one, a single call
    runs eagerly on TensorFlow."""
    grads = _gradients(model, x, y, cache)
    total = 0
    nonfinite = 0
    square_sum = 0.0
    for grad in grads:
        values = np.asarray(grad, dtype=np.float64)
        total += values.size
        nonfinite += int(values.size - np.count_nonzero(np.isfinite(values)))
        square_sum += float(np.sum(np.square(values)))  # NaN/Inf propagate: the norm says so
    norm = math.sqrt(square_sum) if math.isfinite(square_sum) else square_sum
    return norm, (nonfinite / total if total else 0.0)


def _stateless_loss(model: keras.Model, trainable: list[Any], others: list[Any], x: Any, y: Any) -> Any:
    """The model's compiled loss on (x, y) in training mode, with `trainable` as its weights and
    `others` as its other variables' values; every variable write (BatchNormalization
    statistics, seed state, metrics) goes to a scope that is thrown away."""
    mapping = [
        *zip(model.trainable_variables, trainable, strict=True),
        *zip(_other_variables(model), others, strict=True),
    ]
    with keras.StatelessScope(state_mapping=mapping):
        y_pred = model(x, training=True)
        return model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)


def _other_variables(model: keras.Model) -> list[Any]:
    return [*model.non_trainable_variables, *model.metrics_variables]


def _gradients(model: keras.Model, x: Any, y: Any, cache: dict[str, Any] | None) -> list[np.ndarray]:
    backend = keras.backend.backend()
    x = keras.tree.map_structure(keras.ops.convert_to_tensor, x)
    y = keras.tree.map_structure(keras.ops.convert_to_tensor, y)
    others = [v.value for v in _other_variables(model)]
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_gradients(tv: list[Any], ov: list[Any], xs: Any, ys: Any) -> list[Any]:
            with tf.GradientTape() as tape:
                tape.watch(tv)
                loss = _stateless_loss(model, tv, ov, xs, ys)
            return [None if g is None else tf.convert_to_tensor(g) for g in tape.gradient(loss, tv)]

        if cache is not None and "tf" not in cache:  # one trace (~0.2 s) for every later epoch
            cache["tf"] = tf.function(tf_gradients, reduce_retracing=True)
        values = [tf.convert_to_tensor(v.value) for v in model.trainable_variables]
        grads = (cache["tf"] if cache is not None else tf_gradients)(values, others, x, y)
        return [_numpy(g, v) for g, v in zip(grads, values, strict=True)]
    if backend == "jax":
        import jax

        cache = {} if cache is None else cache
        if "jax" not in cache:
            cache["jax"] = jax.jit(jax.grad(lambda tv, ov, xs, ys: _stateless_loss(model, tv, ov, xs, ys)))
        values = [v.value for v in model.trainable_variables]
        return [np.asarray(g) for g in cache["jax"](values, others, x, y)]
    if backend == "torch":
        import torch

        values = [v.value.detach().clone().requires_grad_(True) for v in model.trainable_variables]
        loss = _stateless_loss(model, values, others, x, y)
        grads = torch.autograd.grad(loss, values, allow_unused=True)
        return [_numpy(g, v) for g, v in zip(grads, values, strict=True)]
    return []


def _numpy(grad: Any, like: Any) -> np.ndarray:
    """A variable the loss does not depend on has no gradient: zeros."""
    if grad is None:
        return np.zeros(tuple(like.shape), dtype=np.float32)
    return np.asarray(keras.ops.convert_to_numpy(grad))


def _number(value: Any) -> str:
    number = float(value)
    return f"{number:.3g}" if math.isfinite(number) else str(number)
