"""The devices one job trains on: data-parallel over several, batches that split evenly, peak memory.

A job asks for `gpus` devices (API.md, "Training performance"). The worker pins its child process
to a device set (CUDA_VISIBLE_DEVICES, app.worker_registry.devices); here the child takes the
first `gpus` devices its backend sees and, for two or more, trains data-parallel:
`keras.distribution.DataParallel` on JAX, `tf.distribute.MirroredStrategy` on TensorFlow. The
global batch size is the spec's and the learning rate is left as the spec says: each step sees
the same rows as on one device, split across the devices.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import keras


class DevicesUnavailable(Exception):
    """The job asks for more devices (or a kind of training) than this process can give."""


@dataclass
class DeviceReport:
    """What one attempt trained on, stored on the job as `resources`."""

    gpus: int
    backend: str
    devices: list[str]
    strategy: str  # "single", "DataParallel" (JAX) or "MirroredStrategy" (TensorFlow)
    visible_devices: str | None = None  # the CUDA_VISIBLE_DEVICES the worker pinned this process to
    rows_left_out: dict[str, int] = field(default_factory=dict)
    # Devices the trained weights live on, read back from the model after training (None before).
    replicas: int | None = None
    peak_memory_bytes: int | None = None
    warning: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Placement:
    """The devices of one job, and the rules its data must follow on them."""

    def __init__(self, gpus: int) -> None:
        backend = keras.backend.backend()
        available = _list_devices()
        wanted = max(gpus, 1)
        if wanted > len(available):
            raise DevicesUnavailable(
                f"resources.gpus: the job asks for {gpus} devices, but this worker's process sees "
                f"{len(available)} ({', '.join(available) or 'none'}). Ask for fewer, or run a worker "
                "that gives each job more (TRAINYARD_WORKER_DEVICES and --concurrency)."
            )
        if gpus > 1 and backend not in ("jax", "tensorflow"):
            raise DevicesUnavailable(
                f"resources.gpus: data-parallel training over {gpus} devices needs the jax or tensorflow "
                f"backend; this worker runs {backend}"
            )
        self.devices = available[:wanted]
        self.report = DeviceReport(
            gpus=gpus,
            backend=backend,
            devices=self.devices,
            strategy="single" if gpus <= 1 else ("DataParallel" if backend == "jax" else "MirroredStrategy"),
            visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
        if gpus >= 1 and not any(device.startswith("gpu") for device in self.devices):
            self.report.warning = f"no GPU visible to this worker: trained on {len(self.devices)} CPU device(s) instead"

    @property
    def shards(self) -> int:
        """How many devices split each batch (1: no split)."""
        return len(self.devices) if self.report.strategy != "single" else 1

    def whole_batches(self, data: Any, part: str) -> Any:
        """`data` without the last rows that would make a batch JAX cannot split evenly.

        JAX shards every batch across the devices and cannot shard one whose size does not
        divide by their number. The API requires batch_size to divide by it, so a row count that
        divides makes every batch divide, the last one included: at most shards - 1 rows of
        `part` (training, validation or test rows) are left out, and counted in the report.
        MirroredStrategy splits uneven batches itself: nothing is left out there.
        """
        if self.report.strategy != "DataParallel":
            return data
        rows = len(keras.tree.flatten(data)[0])
        extra = rows % self.shards
        if extra == 0:
            return data
        self.report.rows_left_out[part] = extra
        return keras.tree.map_structure(lambda array: array[: rows - extra], data)

    def note_trained(self, model: keras.Model) -> None:
        """Record on how many devices the trained model's weights actually are."""
        self.report.replicas = _replicas(self.report.backend, model)

    def note_peak_memory(self) -> None:
        """Record the most device memory the job held (None where the backend cannot tell: CPUs)."""
        self.report.peak_memory_bytes = _peak_memory_bytes(self.report.backend, self.devices)


@contextmanager
def placed(gpus: int) -> Iterator[Placement]:
    """Build and train the job's model inside this: on `gpus` devices (0 or 1: the first one).

    Raises:
        DevicesUnavailable: fewer devices visible than asked for, or several on the torch backend.
    """
    placement = Placement(gpus)
    if placement.report.strategy == "DataParallel":
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=placement.devices))
        try:
            yield placement
        finally:
            keras.distribution.set_distribution(None)  # saving and exporting run on one device
    elif placement.report.strategy == "MirroredStrategy":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(devices=[f"/{device.upper()}" for device in placement.devices])
        with strategy.scope():
            yield placement
    else:
        yield placement
    placement.note_peak_memory()


def _list_devices() -> list[str]:
    """The backend's devices as Keras names them ("gpu:0", "cpu:1"): accelerators if any, else CPUs."""
    try:
        return [str(device).lower() for device in keras.distribution.list_devices()]
    except (NotImplementedError, AttributeError):  # backends without a distribution library (torch)
        return ["cpu:0"]


def _replicas(backend: str, model: keras.Model) -> int | None:
    if not model.weights:
        return None
    value = model.weights[0].value
    if backend == "jax":
        return len(value.sharding.device_set)
    if backend == "tensorflow":
        return len(getattr(value, "values", None) or [value])  # a MirroredVariable holds one per device
    return 1


def _peak_memory_bytes(backend: str, devices: list[str]) -> int | None:
    if not any(device.startswith("gpu") for device in devices):
        return None
    try:
        if backend == "jax":
            import jax

            used = [d for d in jax.local_devices() if f"{d.platform}:{d.id}" in devices]
            peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in used]
            return sum(int(p) for p in peaks if p is not None) or None
        if backend == "tensorflow":
            import tensorflow as tf

            return sum(int(tf.config.experimental.get_memory_info(d.upper())["peak"]) for d in devices) or None
        if backend == "torch":
            import torch

            return int(torch.cuda.max_memory_allocated()) or None
    except (RuntimeError, ValueError, KeyError):  # not measurable on this device or build
        return None
    return None
