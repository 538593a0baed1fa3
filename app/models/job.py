"""Training jobs, their per-epoch metrics and their status transitions."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow
from app.models.dataset import new_id


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

STATUS_TYPE = Enum(
    JobStatus,
    native_enum=False,
    length=16,
    values_callable=lambda members: [m.value for m in members],
    validate_strings=True,
)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_created_at_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[JobStatus] = mapped_column(STATUS_TYPE, default=JobStatus.QUEUED, index=True)
    # No foreign key: a finished job keeps naming its dataset after the dataset is deleted.
    dataset_id: Mapped[str] = mapped_column(String(32), index=True)
    spec: Mapped[dict[str, Any]]
    register_as: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # sha256 of the submitted request, to tell a retry from a reused Idempotency-Key
    request_hash: Mapped[str] = mapped_column(String(64))

    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[int | None] = mapped_column(Integer)

    attempt: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    # How often the id was sent to the broker; the recovery sweep backs off by it.
    send_count: Mapped[int] = mapped_column(Integer, default=0)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class JobEpoch(Base):
    """One finished epoch's logs (loss, metrics, val_*), per attempt."""

    __tablename__ = "job_epochs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    logs: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobEvent(Base):
    """A status transition, kept forever: the audit trail of a job."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[JobStatus | None] = mapped_column(STATUS_TYPE)
    to_status: Mapped[JobStatus] = mapped_column(STATUS_TYPE)
    attempt: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
