"""Request and response bodies of /v1/jobs."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.ml.objects import SpecModel
from app.ml.spec import CompileSpec, FitSpec, ModelSpec, Preprocessing, TrainingSpec
from app.models import Job, JobStatus

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class JobCreate(SpecModel):
    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    dataset_id: str = Field(min_length=1, max_length=64)
    model: ModelSpec
    compile: CompileSpec
    fit: FitSpec = Field(default_factory=FitSpec)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    register_as: str | None = Field(default=None, pattern=NAME_PATTERN)
    gpu: bool = Field(default=False, description="Route the job to the `training.gpu` queue.")

    def training_spec(self) -> TrainingSpec:
        return TrainingSpec(model=self.model, compile=self.compile, fit=self.fit, preprocessing=self.preprocessing)


class Progress(BaseModel):
    epoch: int
    epochs: int


class ModelRef(BaseModel):
    name: str
    version: int


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    status: JobStatus
    dataset_id: str
    spec: dict[str, Any]
    register_as: str
    queue: str
    progress: Progress
    metrics: dict[str, Any]
    error: str | None
    model: ModelRef | None
    attempt: int
    worker: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        model = None
        if job.model_name is not None and job.model_version is not None:
            model = ModelRef(name=job.model_name, version=job.model_version)
        return cls(
            id=job.id,
            name=job.name,
            status=job.status,
            dataset_id=job.dataset_id,
            spec=job.spec,
            register_as=job.register_as,
            queue=job.queue,
            progress=Progress(epoch=job.epoch, epochs=job.epochs),
            metrics=job.metrics,
            error=job.error,
            model=model,
            attempt=job.attempt,
            worker=job.worker,
            cancel_requested=job.cancel_requested,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class JobMetrics(BaseModel):
    attempt: int
    epochs: list[dict[str, Any]]


class JobEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: JobStatus | None
    to_status: JobStatus
    attempt: int
    detail: str | None
    at: datetime
