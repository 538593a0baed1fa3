"""Hyperparameter studies and their trials (each trial one ordinary job)."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Enum, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow
from app.models.dataset import new_id


class StudyStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every trial ended; the best one's model is registered
    FAILED = "failed"  # every trial ended and none gave a value
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self is not StudyStatus.RUNNING


class TrialStatus(StrEnum):
    """A trial's status: its job's, plus `pruned` (its job was cancelled by the pruner)."""

    ASKED = "asked"  # parameters chosen, job not yet created (a driver died in between)
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PRUNED = "pruned"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in (TrialStatus.ASKED, TrialStatus.QUEUED, TrialStatus.RUNNING)


def _enum(kind: type[StrEnum]) -> Enum:
    return Enum(kind, native_enum=False, length=16, values_callable=lambda ms: [m.value for m in ms])


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), index=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    dataset_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[StudyStatus] = mapped_column(_enum(StudyStatus), default=StudyStatus.RUNNING, index=True)
    # The request as accepted (app.studies.schemas.StudyCreate, JSON): base, space, objective, ...
    request: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    best_trial: Mapped[int | None] = mapped_column(Integer)
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class StudyTrial(Base):
    """One trial: the parameters the sampler chose, its job, and what the job reported.

    The row is written (and committed) before its job exists; the job is created with an
    Idempotency-Key made of the study id and trial number, so a driver that dies between the
    two creates the same job, never a second one."""

    __tablename__ = "study_trials"

    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str | None] = mapped_column(String(32), index=True)
    status: Mapped[TrialStatus] = mapped_column(_enum(TrialStatus), default=TrialStatus.ASKED)
    params: Mapped[dict[str, Any]]
    # Optuna's per-trial system attributes (e.g. the grid sampler's grid id), replayed on rebuild.
    system_attrs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # epoch → objective metric, as the job's epochs recorded it (what the pruner reads)
    intermediate: Mapped[dict[str, Any]] = mapped_column(default=dict)
    value: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
