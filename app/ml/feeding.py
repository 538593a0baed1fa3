"""How a durable run's batches reach fit(), per `data_placement` and backend.

Every feed hands fit() the same rows in the same order (EpochOrder's permutation of the epoch,
from a given batch on): only where the gathering happens differs.
- host: the rows stay in host memory. On TensorFlow, one tf.data pipeline over them is built once
  and gathers each epoch's batches (what fit() does with arrays, but fit() builds a new pipeline
  every call, and a durable run makes one call an epoch: 0.2-0.3 s an epoch, profiled); elsewhere
  the epoch's rows gathered into numpy arrays, handed to fit() as Keras takes arrays.
- device: the training rows copied to the device once; batches are gathered there, GATHER_BATCHES
  at a time in one call (a call per batch cost the JAX path more than the step on small models).
- pipeline: batches gathered on the host and moved to the device ahead of the step that needs them.
"""

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import keras
import numpy as np

from app.ml.data import take
from app.ml.resume import EpochOrder

PREFETCH_BATCHES = 4
# Batches gathered on the device by one call: the per-call cost (Python, dispatch, moving the
# indices) is paid once per this many batches; the gathered rows are this many batches' worth.
GATHER_BATCHES = 32


class Feed(Protocol):
    def train_args(self, epoch: int, first_batch: int, end_batch: int | None) -> dict[str, Any]:
        """fit() keyword arguments for batches [first_batch, end_batch) of `epoch` (None: to its end)."""
        ...

    def validation_args(self) -> dict[str, Any]:
        """fit() keyword arguments for the validation rows (none when there are none)."""
        ...


def make_feed(
    placement: str, order: EpochOrder, x: Any, y: Any, validation_data: tuple[Any, Any] | None
) -> tuple[Feed, str]:
    """The feed for `placement` on the running backend, and the placement it really gives (a
    backend without that path falls back to the host's, named in the returned string)."""
    backend = keras.backend.backend()
    if placement == "device" and backend == "tensorflow":
        return _TensorFlowFeed(order, x, y, validation_data), "device"
    if placement == "device" and backend == "jax":
        return _JaxFeed(order, x, y, validation_data, on_device=True), "device"
    if placement == "pipeline" and backend == "jax":
        return _JaxFeed(order, x, y, validation_data, on_device=False), "pipeline"
    if placement == "pipeline" and backend == "tensorflow":
        # Keras's own array input on TensorFlow already is a prefetching tf.data pipeline.
        return _HostFeed(order, x, y, validation_data), "pipeline"
    if placement == "host" and backend == "tensorflow":
        return _TensorFlowFeed(order, x, y, validation_data, device="/CPU:0"), "host"
    return _HostFeed(order, x, y, validation_data), "host"


def _rows(order: EpochOrder, epoch: int, first_batch: int, end_batch: int | None) -> np.ndarray:
    """The epoch's row indices for batches [first_batch, end_batch)."""
    stop = None if end_batch is None else end_batch * order.batch_size
    return order.order_of(epoch)[first_batch * order.batch_size : stop]


class _HostFeed:
    def __init__(self, order: EpochOrder, x: Any, y: Any, validation_data: tuple[Any, Any] | None) -> None:
        self._order, self._x, self._y, self._validation = order, x, y, validation_data

    def train_args(self, epoch: int, first_batch: int, end_batch: int | None) -> dict[str, Any]:
        return {
            "x": self._order.epoch_rows(self._x, epoch, first_batch, end_batch),
            "y": self._order.epoch_rows(self._y, epoch, first_batch, end_batch),
            "batch_size": self._order.batch_size,
        }

    def validation_args(self) -> dict[str, Any]:
        return {"validation_data": self._validation}


class _TensorFlowFeed:
    """The rows as tensors on the device (or on `device`: the host's memory for "host"), and one
    tf.data pipeline built once: it reads the epoch's order and the batch range from variables, so
    each epoch's fit() call reuses it (building and tracing a new pipeline cost 0.1-0.3 s an
    epoch here)."""

    def __init__(
        self,
        order: EpochOrder,
        x: Any,
        y: Any,
        validation_data: tuple[Any, Any] | None,
        device: str | None = None,
    ) -> None:
        import tensorflow as tf

        with tf.device(device) if device is not None else contextlib.nullcontext():
            self._build(order, x, y, validation_data)

    def _build(self, order: EpochOrder, x: Any, y: Any, validation_data: tuple[Any, Any] | None) -> None:
        import tensorflow as tf

        self._order = order
        rows, size = order.rows, order.batch_size
        x = keras.tree.map_structure(lambda a: tf.constant(np.asarray(a)), x)
        y = keras.tree.map_structure(lambda a: tf.constant(np.asarray(a)), y)
        self._rows = tf.Variable(np.arange(rows, dtype=np.int64), trainable=False)
        self._start = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._stop = tf.Variable(0, dtype=tf.int64, trainable=False)

        @tf.autograph.experimental.do_not_convert
        def gather(batch: Any) -> tuple[Any, Any]:
            indices = self._rows[batch * size : tf.minimum((batch + 1) * size, rows)]
            return (
                keras.tree.map_structure(lambda a: tf.gather(a, indices), x),
                keras.tree.map_structure(lambda a: tf.gather(a, indices), y),
            )

        self._dataset = (
            tf.data.Dataset.range(order.batches_per_epoch)
            .map(lambda k: k + self._start)
            .take_while(lambda batch: batch < self._stop)
            .map(gather)
            .prefetch(tf.data.AUTOTUNE)
        )
        self._validation = None
        if validation_data is not None:
            self._validation = (
                tf.data.Dataset.from_tensor_slices(validation_data).batch(size).prefetch(tf.data.AUTOTUNE)
            )

    def train_args(self, epoch: int, first_batch: int, end_batch: int | None) -> dict[str, Any]:
        end = self._order.batches_per_epoch if end_batch is None else end_batch
        self._rows.assign(self._order.order_of(epoch))
        self._start.assign(first_batch)
        self._stop.assign(end)
        return {"x": self._dataset, "steps_per_epoch": end - first_batch}

    def validation_args(self) -> dict[str, Any]:
        return {"validation_data": self._validation}


class _JaxFeed:
    """Batches as jax arrays: gathered on the device from rows copied there once (`on_device`),
    or gathered on the host and put on the device by a thread PREFETCH_BATCHES ahead."""

    def __init__(
        self, order: EpochOrder, x: Any, y: Any, validation_data: tuple[Any, Any] | None, on_device: bool
    ) -> None:
        import jax

        self._jax, self._order, self._on_device = jax, order, on_device
        self._validation = validation_data
        if on_device:
            host_rows = (keras.tree.map_structure(np.asarray, x), keras.tree.map_structure(np.asarray, y))
            self._rows = jax.device_put(host_rows)
            self._gather = jax.jit(_gather_batches, static_argnums=2)
        else:
            self._x, self._y = x, y

    def _batches(self, rows: np.ndarray) -> Iterator[tuple[Any, Any]]:
        size = self._order.batch_size
        if self._on_device:
            for start in range(0, len(rows), size * GATHER_BATCHES):
                chunk = rows[start : start + size * GATHER_BATCHES]
                whole = len(chunk) // size  # the epoch's last, short batch is gathered alone
                if whole:
                    yield from self._gather(self._rows, self._jax.device_put(chunk[: whole * size]), whole)
                if whole * size < len(chunk):
                    yield from self._gather(self._rows, self._jax.device_put(chunk[whole * size :]), 1)
            return
        ahead: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH_BATCHES)
        done = object()

        def produce() -> None:
            try:
                for start in range(0, len(rows), size):
                    chunk = rows[start : start + size]
                    ahead.put(self._jax.device_put((take(self._x, chunk), take(self._y, chunk))))
                ahead.put(done)
            except BaseException as exc:  # handed to the training thread, which raises it
                ahead.put(exc)

        threading.Thread(target=produce, name="trainyard-prefetch", daemon=True).start()
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item

    def train_args(self, epoch: int, first_batch: int, end_batch: int | None) -> dict[str, Any]:
        rows = _rows(self._order, epoch, first_batch, end_batch)
        return {"x": self._batches(rows), "steps_per_epoch": -(-len(rows) // self._order.batch_size)}

    def validation_args(self) -> dict[str, Any]:
        if self._validation is None:
            return {}
        vx, vy = self._validation
        return {"validation_data": (vx, vy), "validation_batch_size": self._order.batch_size}


def _gather_batches(rows: Any, indices: Any, batches: int) -> tuple[Any, ...]:
    """`batches` equal batches of `rows` (an (x, y) tree) in the order of `indices`, as separate
    arrays: jitted, one call gathers them all."""
    import jax

    gathered = jax.tree_util.tree_map(lambda a: a[indices], rows)
    size = len(indices) // batches
    return tuple(jax.tree_util.tree_map(lambda a, k=k: a[k * size : (k + 1) * size], gathered) for k in range(batches))
