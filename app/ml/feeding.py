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

from app.ml.class_weights import row_weights
from app.ml.data import take
from app.ml.fused import Grouping, blocks
from app.ml.resume import EpochOrder

PREFETCH_BATCHES = 4
# Batches gathered on the device by one call: the per-call cost (Python, dispatch, moving the
# indices) is paid once per this many batches; the gathered rows are this many batches' worth.
GATHER_BATCHES = 32


class Feed(Protocol):
    # The training rows on the device, an (x, y) tree a fused step group gathers from (None: this
    # feed keeps them elsewhere, and cannot feed fused groups).
    device_rows: Any
    # Whether its batches carry the class weights as sample weights (app.ml.class_weights): fit()
    # must not be given `class_weight` then.
    weighs_classes: bool

    def train_args(self, epoch: int, first_batch: int, end_batch: int | None) -> dict[str, Any]:
        """fit() keyword arguments for batches [first_batch, end_batch) of `epoch` (None: to its end)."""
        ...

    def group_args(self, grouping: Grouping, epoch: int, first_batch: int) -> dict[str, Any]:
        """fit() keyword arguments for the fused groups of `epoch` from `first_batch` on: one
        Block of batch indices per group (app.ml.fused); only where `device_rows` is set."""
        ...

    def validation_args(self) -> dict[str, Any]:
        """fit() keyword arguments for the validation rows (none when there are none)."""
        ...


def make_feed(
    placement: str,
    order: EpochOrder,
    x: Any,
    y: Any,
    validation_data: tuple[Any, Any] | None,
    class_weight: dict[int, float] | None = None,
) -> tuple[Feed, str]:
    """The feed for `placement` on the running backend, and the placement it really gives (a
    backend without that path falls back to the host's, named in the returned string)."""
    backend = keras.backend.backend()
    if placement == "device" and backend == "tensorflow":
        return _TensorFlowFeed(order, x, y, validation_data, class_weight), "device"
    if placement == "device" and backend == "jax":
        return _JaxFeed(order, x, y, validation_data, on_device=True, class_weight=class_weight), "device"
    if placement == "pipeline" and backend == "jax":
        return _JaxFeed(order, x, y, validation_data, on_device=False, class_weight=class_weight), "pipeline"
    if placement == "pipeline" and backend == "tensorflow":
        # Keras's own array input on TensorFlow already is a prefetching tf.data pipeline.
        return _HostFeed(order, x, y, validation_data), "pipeline"
    if placement == "host" and backend == "tensorflow":
        return _TensorFlowFeed(order, x, y, validation_data, class_weight, device="/CPU:0"), "host"
    return _HostFeed(order, x, y, validation_data), "host"


def _rows(order: EpochOrder, epoch: int, first_batch: int, end_batch: int | None) -> np.ndarray:
    """The epoch's row indices for batches [first_batch, end_batch)."""
    stop = None if end_batch is None else end_batch * order.batch_size
    return order.order_of(epoch)[first_batch * order.batch_size : stop]


class _HostFeed:
    device_rows = None
    weighs_classes = False  # Keras applies class_weight to arrays

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

    def group_args(self, grouping: Grouping, epoch: int, first_batch: int) -> dict[str, Any]:
        raise ValueError("the host feed has no rows on the device to fuse step groups over")


class _TensorFlowFeed:
    """The rows as tensors on the device (or on `device`: the host's memory for "host"), and one
    tf.data pipeline built once: it reads the epoch's order and the batch range from variables, so
    each epoch's fit() call reuses it (building and tracing a new pipeline cost 0.1-0.3 s an
    epoch here). Fused groups get a pipeline of their own, of Blocks, built the same way."""

    def __init__(
        self,
        order: EpochOrder,
        x: Any,
        y: Any,
        validation_data: tuple[Any, Any] | None,
        class_weight: dict[int, float] | None = None,
        device: str | None = None,
    ) -> None:
        import tensorflow as tf

        self._device = device
        self.weighs_classes = class_weight is not None
        parts = (x, y) if class_weight is None else (x, y, row_weights(np.asarray(y), class_weight))
        with tf.device(device) if device is not None else contextlib.nullcontext():
            self._build(order, parts, validation_data)
        # Rows placed on the host for "host" are not the device's: fused groups run on the device.
        self.device_rows = self._parts if device is None else None
        self._groups: tuple[Grouping, Any] | None = None

    def _build(self, order: EpochOrder, parts: tuple[Any, ...], validation_data: tuple[Any, Any] | None) -> None:
        import tensorflow as tf

        self._order = order
        rows, size = order.rows, order.batch_size
        self._parts = keras.tree.map_structure(lambda a: tf.constant(np.asarray(a)), parts)
        self._rows = tf.Variable(np.arange(rows, dtype=np.int64), trainable=False)
        self._start = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._stop = tf.Variable(0, dtype=tf.int64, trainable=False)

        @tf.autograph.experimental.do_not_convert
        def gather(batch: Any) -> tuple[Any, ...]:
            indices = self._rows[batch * size : tf.minimum((batch + 1) * size, rows)]
            return tuple(keras.tree.map_structure(lambda a: tf.gather(a, indices), self._parts))

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

    def _block_dataset(self, grouping: Grouping) -> Any:
        """Blocks of the groups starting at batch `_start`, `grouping.steps` batches apart, up to
        `_stop`: what app.ml.fused.blocks() gives, computed in the pipeline."""
        import tensorflow as tf

        size, steps, whole = self._order.batch_size, grouping.steps, grouping.whole_batches
        tail_rows = grouping.tail_rows

        @tf.autograph.experimental.do_not_convert
        def block(start: Any) -> tuple[Any, Any, Any, Any]:
            stop = tf.minimum(start + steps, self._stop)
            count = tf.maximum(tf.minimum(stop, whole) - start, 0)
            full = tf.reshape(tf.cast(self._rows[start * size : (start + count) * size], tf.int32), (-1, size))
            full = tf.pad(full, [[0, steps - count], [0, 0]])
            has_tail = stop > whole
            tail = tf.cast(self._rows[whole * size : whole * size + tail_rows], tf.int32)
            return tf.ensure_shape(full, (steps, size)), tf.cast(count, tf.int32), tail, has_tail

        with tf.device(self._device) if self._device is not None else contextlib.nullcontext():
            return (
                tf.data.Dataset.range(grouping.groups(0, self._order.batches_per_epoch) + 1)
                .map(lambda k: k * steps + self._start)
                .take_while(lambda start: start < self._stop)
                .map(block)
                .prefetch(2)
            )

    def train_args(self, epoch: int, first_batch: int, end_batch: int | None) -> dict[str, Any]:
        end = self._order.batches_per_epoch if end_batch is None else end_batch
        self._set_range(epoch, first_batch, end)
        return {"x": self._dataset, "steps_per_epoch": end - first_batch}

    def group_args(self, grouping: Grouping, epoch: int, first_batch: int) -> dict[str, Any]:
        if self._groups is None or self._groups[0] != grouping:
            self._groups = (grouping, self._block_dataset(grouping))
        end = self._order.batches_per_epoch
        self._set_range(epoch, first_batch, end)
        return {"x": self._groups[1], "steps_per_epoch": end - first_batch}

    def _set_range(self, epoch: int, first_batch: int, end_batch: int) -> None:
        self._rows.assign(self._order.order_of(epoch))
        self._start.assign(first_batch)
        self._stop.assign(end_batch)

    def validation_args(self) -> dict[str, Any]:
        return {"validation_data": self._validation}


class _JaxFeed:
    """Batches as jax arrays: gathered on the device from rows copied there once (`on_device`),
    or gathered on the host and put on the device by a thread PREFETCH_BATCHES ahead."""

    def __init__(
        self,
        order: EpochOrder,
        x: Any,
        y: Any,
        validation_data: tuple[Any, Any] | None,
        on_device: bool,
        class_weight: dict[int, float] | None = None,
    ) -> None:
        import jax

        self._jax, self._order, self._on_device = jax, order, on_device
        self._validation = validation_data
        # Each row's class weight, computed once and gathered with the row, as a third part.
        self.weighs_classes = class_weight is not None
        host_rows: tuple[Any, ...] = (keras.tree.map_structure(np.asarray, x), keras.tree.map_structure(np.asarray, y))
        if class_weight is not None:
            host_rows += (row_weights(host_rows[1], class_weight),)
        self.device_rows = None
        if on_device:
            self.device_rows = self._rows = jax.device_put(host_rows)
            self._gather = jax.jit(_gather_batches, static_argnums=2)
        else:
            self._host_rows = host_rows

    def _batches(self, rows: np.ndarray) -> Iterator[tuple[Any, ...]]:
        """(x, y) batches of `rows`, or (x, y, sample weights) with class weights."""
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
                    ahead.put(self._jax.device_put(tuple(take(part, chunk) for part in self._host_rows)))
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

    def group_args(self, grouping: Grouping, epoch: int, first_batch: int) -> dict[str, Any]:
        if self.device_rows is None:
            raise ValueError("the pipeline feed has no rows on the device to fuse step groups over")
        end = self._order.batches_per_epoch
        found = blocks(grouping, self._order.order_of(epoch), first_batch, end)
        return {"x": (self._jax.device_put(block) for block in found), "steps_per_epoch": end - first_batch}

    def validation_args(self) -> dict[str, Any]:
        if self._validation is None:
            return {}
        vx, vy = self._validation
        return {"validation_data": (vx, vy), "validation_batch_size": self._order.batch_size}


def _gather_batches(rows: Any, indices: Any, batches: int) -> tuple[Any, ...]:
    """`batches` equal batches of `rows` (an (x, y) or (x, y, weights) tree) in the order of `indices`, as separate
    arrays: jitted, one call gathers them all."""
    import jax

    gathered = jax.tree_util.tree_map(lambda a: a[indices], rows)
    size = len(indices) // batches
    return tuple(jax.tree_util.tree_map(lambda a, k=k: a[k * size : (k + 1) * size], gathered) for k in range(batches))
