"""The feeds of a durable run: every placement hands fit() the same rows in the same order."""

from typing import Any

import keras
import numpy as np
import pytest

from app.ml import feeding
from app.ml.resume import EpochOrder

# 150 rows in batches of 4: 37 whole batches and a short one of 2, i.e. more than one gathered
# group (feeding.GATHER_BATCHES) and a remainder, whatever batch an epoch starts at.
ROWS, BATCH = 150, 4


def arrays() -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(ROWS * 3, dtype=np.float32).reshape(ROWS, 3)
    return x, np.arange(ROWS, dtype=np.int64)


@pytest.mark.parametrize(("epoch", "first_batch", "end_batch"), [(0, 0, None), (1, 5, None), (2, 3, 36)])
def test_the_jax_device_feed_gives_the_host_feeds_batches_in_order(
    epoch: int, first_batch: int, end_batch: int | None
) -> None:
    pytest.importorskip("jax", reason="the [jax] extra is not installed")
    x, y = arrays()
    order = EpochOrder(ROWS, BATCH, seed=3, shuffle=True)
    device = feeding._JaxFeed(order, x, y, None, on_device=True)
    host = feeding._HostFeed(order, x, y, None).train_args(epoch, first_batch, end_batch)

    given = device.train_args(epoch, first_batch, end_batch)
    batches = [(np.asarray(bx), np.asarray(by)) for bx, by in given["x"]]

    assert len(batches) == given["steps_per_epoch"]
    sizes = [len(bx) for bx, _ in batches]
    whole, rest = divmod(len(host["x"]), BATCH)
    assert sizes == [BATCH] * whole + ([rest] if rest else [])
    np.testing.assert_array_equal(np.concatenate([bx for bx, _ in batches]), host["x"])
    np.testing.assert_array_equal(np.concatenate([by for _, by in batches]), host["y"])


@pytest.mark.parametrize("placement", ["jax-device", "jax-pipeline", "tensorflow-device", "tensorflow-host"])
def test_feeds_weigh_each_row_by_its_class_as_keras_arrays_do_a_class_not_given_weighing_one(placement: str) -> None:
    # Keras's tf.data class weighting fails on a class above the largest given, and it takes no
    # class_weight with batches from Python: every feed but the arrays' weighs its rows itself.
    backend, where = placement.split("-")
    if backend == "jax":
        pytest.importorskip("jax", reason="the [jax] extra is not installed")
    elif keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow feeds run on TensorFlow")
    x, _ = arrays()
    y = np.arange(ROWS, dtype=np.int64) % 4  # class 3 has no weight given
    order = EpochOrder(ROWS, BATCH, seed=3, shuffle=True)
    weights = {0: 0.5, 1: 2.0, 2: 3.0}
    if backend == "jax":
        feed: Any = feeding._JaxFeed(order, x, y, None, on_device=where == "device", class_weight=weights)
    else:
        feed = feeding._TensorFlowFeed(order, x, y, None, weights, device="/CPU:0" if where == "host" else None)

    batches = [tuple(np.asarray(part) for part in batch) for batch in feed.train_args(0, 0, None)["x"]]

    assert feed.weighs_classes and {len(batch) for batch in batches} == {3}
    labels = np.concatenate([by for _, by, _ in batches])
    np.testing.assert_array_equal(labels, y[order.order_of(0)])
    np.testing.assert_allclose(np.concatenate([sw for _, _, sw in batches]), np.array([0.5, 2.0, 3.0, 1.0])[labels])
