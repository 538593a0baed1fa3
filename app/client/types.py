"""Typed results of the SDK: pydantic mirrors of the API's JSON (fields the server adds later are kept)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


class _Body(BaseModel):
    # A newer server may add fields: keep them (readable as attributes) rather than fail.
    model_config = ConfigDict(extra="allow")


class Dataset(_Body):
    """A dataset object as `GET /v1/datasets/{id}?view=full` answers it: `features` and `target`
    are the whole schema."""

    id: str
    name: str
    format: str
    n_rows: int
    size_bytes: int
    sha256: str
    features: dict[str, Any]
    target: dict[str, Any]
    warnings: list[str] = []
    project: str = "default"
    created_at: datetime


class Progress(_Body):
    epoch: int = 0
    epochs: int | None = None


class ModelRef(_Body):
    name: str
    version: int


class JobInfo(_Body):
    """A job object as `GET /v1/jobs/{id}?view=full` answers it (the SDK always asks for the full view)."""

    id: str
    name: str
    status: str
    dataset_id: str
    spec: dict[str, Any] = {}
    progress: Progress = Field(default_factory=Progress)
    metrics: dict[str, Any] = {}
    error: str | None = None
    model: ModelRef | None = None
    attempt: int = 0
    waiting_for: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES


class Epoch(_Body):
    """One finished epoch: its number, the attempt that trained it and Keras's logs."""

    epoch: int
    attempt: int = 1
    logs: dict[str, float | None] = {}
    finished_at: datetime | None = None
    duration_s: float | None = None
    samples_per_second: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _logs(cls, row: Any) -> Any:
        """The API's rows are flat (a metrics row, an `epoch` event): every key but the known
        ones is a log value."""
        if not isinstance(row, dict) or "logs" in row:
            return row
        known = {"epoch", "attempt", "finished_at", "duration_s", "samples_per_second"}
        logs = {k: v for k, v in row.items() if k not in known and (v is None or isinstance(v, int | float))}
        return {k: v for k, v in row.items() if k in known} | {"logs": logs}


class JobMetrics(_Body):
    attempt: int
    epochs: list[Epoch]


class StatusEvent(_Body):
    """`event: status` on a job's stream."""

    id: str
    from_status: str | None = None
    to_status: str
    attempt: int = 0
    detail: str | None = None
    resumed_from_epoch: int | None = None


class EpochEvent(_Body):
    """`event: epoch` on a job's stream."""

    id: str
    epoch: Epoch


class EndEvent(_Body):
    """`event: end`: the final job object; the stream closes after it."""

    id: str
    job: JobInfo


JobEvent = StatusEvent | EpochEvent | EndEvent


class ModelItem(_Body):
    name: str
    latest_version: int
    labels: dict[str, int] = {}


class ModelVersion(_Body):
    version: int
    state: str = "AVAILABLE"
    job_id: str | None = None
    created_at: datetime | None = None
    metrics: dict[str, Any] = {}
