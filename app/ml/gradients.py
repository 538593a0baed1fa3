"""The one backend-specific piece of explaining: a function's value and its gradient.

Everything else is `keras.ops`; only differentiation differs by backend (TensorFlow's
GradientTape, `jax.grad`, torch autograd).
"""

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

# Maps the model's inputs (backend tensors) to one number per row: the explained output.
RowFunction = Callable[[list[Any]], Any]


def value_and_gradients(fn: RowFunction, inputs: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """`fn(inputs)` per row, and the gradient of its sum with respect to each input.

    Rows are independent (no batch-wide layer in inference), so the gradient of the sum is each
    row's own gradient. An input `fn` does not depend on gets zeros.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow(fn, inputs)
    if backend == "jax":
        return _jax(fn, inputs)
    if backend == "torch":
        return _torch(fn, inputs)
    raise NotImplementedError(f"explaining needs gradients; the {backend!r} backend has none here")


def _tensorflow(fn: RowFunction, inputs: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    import tensorflow as tf

    tensors = [tf.convert_to_tensor(x) for x in inputs]
    with tf.GradientTape() as tape:
        for tensor in tensors:
            tape.watch(tensor)
        values = fn(tensors)
        total = tf.reduce_sum(values)
    grads = tape.gradient(total, tensors, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return np.asarray(values), [np.asarray(g) for g in grads]


def _jax(fn: RowFunction, inputs: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    import jax
    import jax.numpy as jnp

    def total(tensors: list[Any]) -> tuple[Any, Any]:
        values = fn(tensors)
        return jnp.sum(values), values

    grads, values = jax.grad(total, has_aux=True)([jnp.asarray(x) for x in inputs])
    return np.asarray(values), [np.asarray(g) for g in grads]


def _torch(fn: RowFunction, inputs: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    import torch

    device = keras.ops.convert_to_tensor(inputs[0][:1]).device  # where Keras puts tensors
    tensors = [torch.tensor(x, device=device, requires_grad=True) for x in inputs]
    values = fn(tensors)
    grads = torch.autograd.grad(values.sum(), tensors, allow_unused=True)
    out = [np.zeros_like(x) if g is None else g.detach().cpu().numpy() for x, g in zip(inputs, grads, strict=True)]
    return values.detach().cpu().numpy(), out
