"""Training jobs, their per-epoch metrics and their status transitions."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow
from app.models.dataset import new_id


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT})

STATUS_TYPE = Enum(
    JobStatus,
    native_enum=False,
    length=16,
    values_callable=lambda members: [m.value for m in members],
    validate_strings=True,
)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_created_at_id", "created_at", "id"),
        # An Idempotency-Key is one project's: another project's reuse of it is a new job.
        Index("ix_jobs_project_idempotency_key", "project", "idempotency_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), index=True)
    # What the job does: "train" (spec: a TrainingSpec) or "compress" (spec: the compress request
    # and its source version, app.compress).
    kind: Mapped[str] = mapped_column(String(16), default="train", server_default="train")
    project: Mapped[str] = mapped_column(String(64), default="default", server_default="default", index=True)
    status: Mapped[JobStatus] = mapped_column(STATUS_TYPE, default=JobStatus.QUEUED, index=True)
    # No foreign key: a finished job keeps naming its dataset after the dataset is deleted.
    dataset_id: Mapped[str] = mapped_column(String(32), index=True)
    spec: Mapped[dict[str, Any]]
    register_as: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # sha256 of the submitted request, to tell a retry from a reused Idempotency-Key
    request_hash: Mapped[str] = mapped_column(String(64))

    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[int | None] = mapped_column(Integer)

    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts that ended by a graceful hand-back (SIGTERM): they do not count against max_attempts.
    handbacks: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    # How often the id was sent to the broker; the recovery sweep backs off by it.
    send_count: Mapped[int] = mapped_column(Integer, default=0)

    # Durability (API.md v0.3): limits per job, and where the current attempt started from.
    max_runtime_s: Mapped[int | None] = mapped_column(Integer)  # None: the server maximum
    stall_timeout_s: Mapped[int | None] = mapped_column(Integer)  # None: the server default
    checkpoint_every_s: Mapped[float | None]  # None: the server default
    # Seconds trained by attempts that ended; the running attempt adds now - started_at.
    runtime_s: Mapped[float] = mapped_column(default=0.0)
    resumed_from_epoch: Mapped[int | None] = mapped_column(Integer)
    checkpoint_attempt: Mapped[int | None] = mapped_column(Integer)
    checkpoint_epoch: Mapped[int | None] = mapped_column(Integer)
    checkpoint_batch: Mapped[int | None] = mapped_column(Integer)
    checkpoint_saved_at: Mapped[datetime | None]
    # How the previous attempt's process ended, when it died (signal, exit code, epoch reached).
    last_exit: Mapped[str | None] = mapped_column(Text)
    # What fit.performance chose for the latest attempt, and why (PerformanceRecord as JSON).
    performance: Mapped[dict[str, Any] | None]

    # Devices (API.md v0.3 "Training performance"): how many the job asked for (0: any CPU
    # worker), and what its current attempt was given (app.ml.distribution.DeviceReport).
    gpus: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class JobEpoch(Base):
    """One finished epoch's logs (loss, metrics, val_*), per attempt.

    A resumed attempt deletes the rows past its checkpoint, so the rows left are one history:
    each epoch once, from the attempt whose weights were kept."""

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


class Worker(Base):
    """A `trainyard worker` (or `serve`'s built-in one), as its main process last reported.

    Read by /readyz (is anything consuming a queue that has jobs?) and by the recovery sweep
    (an idle worker beside an old queued job means the job's message was lost)."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[str] = mapped_column(String(200))  # comma-separated
    active_jobs: Mapped[int] = mapped_column(Integer, default=0)
    stopping: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # What it trains on (app.worker_registry.devices): the Keras backend, the device ids it was
    # told or found (None: not known), and how many of them one job gets.
    backend: Mapped[str | None] = mapped_column(String(32))
    devices: Mapped[list[str] | None] = mapped_column(JSON)
    devices_per_job: Mapped[int | None] = mapped_column(Integer)


class StreamEvent(Base):
    """One entry of the job event log that the SSE streams replay (DESIGN.md decision 10).

    Status transitions and finished epochs share one id sequence, so `Last-Event-ID` is a
    `WHERE id > :last`. Rows are appended in id order = commit order (app.events.log serializes
    the writers on PostgreSQL) and never deleted: an epoch retrained by a resumed attempt appears
    again, with that attempt's number. `data` is the event's JSON payload as clients get it.
    """

    __tablename__ = "job_stream"
    __table_args__ = (Index("ix_job_stream_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "status" or "epoch" (app.events.log.Kind)
    # The job's status once this event happened: a status event's to_status; running for epochs.
    status: Mapped[JobStatus] = mapped_column(STATUS_TYPE, index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    move: Mapped[str | None] = mapped_column(String(16))  # status events: app.jobs.states.Move
    actor: Mapped[str | None] = mapped_column(String(16))  # status events: app.jobs.states.Actor
    # Epoch events: wall time of the epoch (validation included) and rows trained in it.
    duration_s: Mapped[float | None]
    samples: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]]
    at: Mapped[datetime] = mapped_column(default=utcnow)
