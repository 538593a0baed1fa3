"""The trainyard Python SDK (`from app.client import Client`) and the client commands built on it.

The names below load on first use (PEP 562), so that `trainyard serve` and `worker`, which
register the client commands, do not import httpx, numpy and the rest at start."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.client.client import Client, Job
    from app.client.transport import TrainyardError
    from app.client.types import Dataset, Epoch, JobInfo, JobMetrics, ModelItem, ModelVersion

_HOMES = {
    "Client": "app.client.client",
    "Job": "app.client.client",
    "TrainyardError": "app.client.transport",
    "Dataset": "app.client.types",
    "Epoch": "app.client.types",
    "JobInfo": "app.client.types",
    "JobMetrics": "app.client.types",
    "ModelItem": "app.client.types",
    "ModelVersion": "app.client.types",
}
__all__ = [
    "Client",
    "Dataset",
    "Epoch",
    "Job",
    "JobInfo",
    "JobMetrics",
    "ModelItem",
    "ModelVersion",
    "TrainyardError",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'app.client' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
