"""Fused step groups (`fit.fused_steps`): a group of `steps_per_execution` steps as one compiled loop.

Keras runs a step group as a loop that fetches each batch from the input and calls the compiled
step once per batch: on TensorFlow a tf.data element, an Optional and two conditionals a step; on
JAX a call from Python a step. On a small model that bookkeeping costs more than the step itself
(the seed MLP at batch 32 on TensorFlow, in one process: 0.31 ms a step in Keras's loop, 0.08 ms
fused; bench/fused_steps.py).

Fused, the training rows stay on the device and a group arrives as one Block of batch indices;
the compiled loop gathers each batch in place and runs the model's own `train_step` on it. The
steps, their batches and their order are those Keras would run: only where the calls into the
backend are cut changes, not what is computed. Callbacks see one batch end per group, as with
any `steps_per_execution`.

A group holds `steps` batches of `batch_size` rows, except the epoch's last group (fewer) and its
last batch (short when the rows do not divide into batches). So a Block is: `full`, `count` whole
batches padded to `steps` rows of indices, and `tail`, the short batch's indices, used when
`has_tail`. Every group has the same shapes, so the loop is compiled once.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from app.ml.resume import EpochOrder

BACKENDS = frozenset({"tensorflow", "jax"})


@dataclass(frozen=True)
class Grouping:
    """How an epoch's batches are cut into fused groups."""

    order: EpochOrder
    steps: int  # batches per group

    @property
    def whole_batches(self) -> int:
        """Batches of exactly `batch_size` rows in an epoch."""
        return self.order.rows // self.order.batch_size

    @property
    def tail_rows(self) -> int:
        """Rows of the epoch's short last batch (0: none)."""
        return self.order.rows % self.order.batch_size

    def groups(self, first_batch: int, end_batch: int) -> int:
        """Groups of batches [first_batch, end_batch): fit() calls the train function this often."""
        return -(-(end_batch - first_batch) // self.steps)


# full, count, tail, has_tail; as host arrays here (TensorFlow's pipeline makes the same as tensors)
Block = tuple[np.ndarray, np.int32, np.ndarray, np.bool_]


def blocks(grouping: Grouping, epoch_order: np.ndarray, first_batch: int, end_batch: int) -> list[Block]:
    """The Blocks (full, count, tail, has_tail) of batches [first_batch, end_batch) of an epoch
    whose row order is `epoch_order`, as host arrays (the JAX feed's; TensorFlow builds the same
    inside its pipeline)."""
    size, steps = grouping.order.batch_size, grouping.steps
    out: list[Block] = []
    for start in range(first_batch, end_batch, steps):
        stop = min(start + steps, end_batch)
        whole_stop = min(stop, grouping.whole_batches)
        count = max(whole_stop - start, 0)
        full = np.zeros((steps, size), dtype=np.int32)
        full[:count] = epoch_order[start * size : (start + count) * size].reshape(count, size)
        # The tail is the epoch's short batch in every Block (one shape); trained where has_tail.
        tail = epoch_order[grouping.whole_batches * size :].astype(np.int32)
        out.append((full, np.int32(count), tail, np.bool_(stop > grouping.whole_batches)))
    return out


def install(model: keras.Model, rows: Any, grouping: Grouping, jit_compile: bool) -> None:
    """Make `model.fit` run each group of `grouping.steps` batches as one compiled loop over
    `rows` on the device (an (x, y) or (x, y, sample weights) tree, gathered into each batch);
    fit() must be given the feed's Blocks, one per group, and no `class_weight`."""
    model.steps_per_execution = grouping.steps
    backend = keras.backend.backend()
    if backend == "tensorflow":
        model.train_function = _tensorflow_function(model, rows, grouping, jit_compile)
    elif backend == "jax":
        model.train_function = _jax_function(model, rows, grouping, jit_compile)
    else:
        raise ValueError(f"no fused step groups on {backend}")


def _tensorflow_function(model: keras.Model, rows: Any, grouping: Grouping, jit_compile: bool) -> Callable[[Any], Any]:
    import tensorflow as tf

    def step(indices: Any) -> None:
        model.train_step(tuple(keras.tree.map_structure(lambda a: tf.gather(a, indices), rows)))

    @tf.function(jit_compile=jit_compile, reduce_retracing=False)
    def run_group(full: Any, count: Any, tail: Any, has_tail: Any) -> Any:
        def body(k: Any) -> Any:
            step(full[k])
            return (k + 1,)

        tf.while_loop(lambda k: k < count, body, (tf.constant(0),))
        if grouping.tail_rows:

            def train_tail() -> Any:
                step(tail)
                return tf.constant(True)

            tf.cond(has_tail, train_tail, lambda: tf.constant(False))
        # What Keras's train_step returns: the metrics' results after the group's last step.
        return model.get_metrics_result()

    def train_function(iterator: Any) -> Any:
        return run_group(*next(iterator))

    return train_function


def _jax_function(model: keras.Model, rows: Any, grouping: Grouping, jit_compile: bool) -> Callable[[Any, Any], Any]:
    import jax

    def step(state: Any, indices: Any) -> tuple[Any, Any]:
        return model.train_step(state, tuple(jax.tree_util.tree_map(lambda a: a[indices], rows)))

    def run_group(state: Any, full: Any, count: Any, tail: Any, has_tail: Any) -> tuple[Any, Any]:
        # The loop carries the last step's logs; their shapes come from tracing one step.
        shapes = jax.eval_shape(step, state, full[0])[0]
        logs = jax.tree_util.tree_map(lambda s: jax.numpy.zeros(s.shape, s.dtype), shapes)

        def body(k: Any, carried: tuple[Any, Any]) -> tuple[Any, Any]:
            return step(carried[1], full[k])

        logs, state = jax.lax.fori_loop(0, count, body, (logs, state))
        if grouping.tail_rows:
            logs, state = jax.lax.cond(has_tail, lambda c: step(c[1], tail), lambda c: c, (logs, state))
        return logs, state

    compiled = jax.jit(run_group, donate_argnums=0) if jit_compile else run_group

    def train_function(state: Any, iterator: Any) -> tuple[Any, Any]:
        return compiled(state, *next(iterator))

    return train_function
