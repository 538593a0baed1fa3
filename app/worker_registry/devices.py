"""A worker's devices: which it has, how its child processes share them, and how a child is pinned.

Runs in the worker's main process, which must not import a Keras backend before it forks its
children (DESIGN.md): devices come from TRAINYARD_WORKER_DEVICES, else the worker's own
CUDA_VISIBLE_DEVICES, else nvidia-ml-py (NVML reads the driver, no CUDA context), else they are
not known here and each child records what its backend sees on the jobs it runs.
"""

import logging
import os
from dataclasses import dataclass

from app.config import Settings

log = logging.getLogger(__name__)

# Set in each child before its backend starts, unless the operator set them: two jobs on one
# node must not each reserve most of a GPU's memory up front.
MEMORY_SHARING_ENV = {
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",  # JAX: no 75% preallocation
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # TensorFlow: memory growth
}


class DeviceConfigError(ValueError):
    """The devices cannot be shared out among the worker's child processes."""


@dataclass(frozen=True)
class DevicePlan:
    """The device ids a worker has (None: not known) and how many each child gets."""

    backend: str
    devices: list[str] | None
    concurrency: int

    @property
    def per_job(self) -> int | None:
        return len(self.devices) // self.concurrency if self.devices is not None else None

    def slot(self, index: int) -> list[str] | None:
        """The devices of child `index` (0-based; Celery keeps a replaced child's index)."""
        if self.devices is None or self.per_job is None:
            return None
        return self.devices[index * self.per_job : (index + 1) * self.per_job]

    def child_environment(self, index: int) -> dict[str, str]:
        """What child `index` sets in its environment before it imports Keras."""
        env = {name: os.environ.get(name, value) for name, value in MEMORY_SHARING_ENV.items()}
        slot = self.slot(index)
        if slot is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(slot)
        return env


def plan_devices(settings: Settings, concurrency: int) -> DevicePlan:
    """The worker's devices, shared evenly among `concurrency` children.

    Raises:
        DeviceConfigError: fewer devices than children (a child would have none).
    """
    if settings.worker_devices is not None:
        devices: list[str] | None = _split(settings.worker_devices)
    elif os.environ.get("CUDA_VISIBLE_DEVICES", "").strip():  # the operator already chose this node's GPUs
        devices = _split(os.environ["CUDA_VISIBLE_DEVICES"])
    else:
        devices = _from_nvml()
    plan = DevicePlan(os.environ.get("KERAS_BACKEND", "tensorflow"), devices, concurrency)
    if devices and len(devices) < concurrency:
        raise DeviceConfigError(
            f"TRAINYARD_WORKER_DEVICES: {len(devices)} device(s) ({','.join(devices)}) cannot be shared "
            f"among --concurrency {concurrency} child processes: give each at least one, or lower --concurrency"
        )
    if devices and len(devices) % concurrency:
        log.warning("%s devices for %s children: %s stay idle", len(devices), concurrency, len(devices) % concurrency)
    return plan


def _split(ids: str) -> list[str]:
    return [part.strip() for part in ids.split(",") if part.strip()]


def _from_nvml() -> list[str] | None:
    """GPU indexes as NVML counts them, or None without nvidia-ml-py or a driver."""
    try:
        import pynvml  # nvidia-ml-py: optional, on GPU nodes
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())] or None
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None
