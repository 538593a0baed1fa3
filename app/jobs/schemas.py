"""Request and response bodies of /v1/jobs: each job as a summary (the default) or in full."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.ml.objects import SpecModel
from app.ml.run_control import PerformanceRecord
from app.ml.spec import CompileSpec, DistillSpec, FitSpec, ModelSpec, Preprocessing, TrainingSpec
from app.models import Job, JobStatus

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class CheckpointPolicy(SpecModel):
    every_seconds: float = Field(
        gt=0,
        le=7 * 24 * 3600,
        description="Also checkpoint inside an epoch this often (one after every epoch always).",
    )


class Resources(SpecModel):
    gpus: int = Field(
        ge=0,
        le=64,
        description="Devices the job trains on, data-parallel when 2 or more (the global batch size "
        "as given; `fit.batch_size` must divide by it). 1 or more routes the job to `training.gpu`.",
    )


class JobCreate(SpecModel):
    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    dataset_id: str = Field(min_length=1, max_length=64)
    model: ModelSpec
    compile: CompileSpec
    fit: FitSpec = Field(default_factory=FitSpec)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    distill: DistillSpec | None = Field(
        default=None, description="Train the model as a student of a registered teacher version (soft targets)."
    )
    register_as: str | None = Field(default=None, pattern=NAME_PATTERN)
    gpu: bool = Field(default=False, description="Shorthand for `resources: {gpus: 1}`.")
    resources: Resources | None = None
    max_runtime_s: int | None = Field(
        default=None,
        gt=0,
        description="Training time allowed across attempts (not time queued); past it the job ends "
        "`timed_out`. At most, and by default, the server's TRAINYARD_MAX_JOB_RUNTIME_S.",
    )
    stall_timeout_s: int | None = Field(
        default=None,
        gt=0,
        description="A job with no finished batch this long is treated as a lost worker "
        "(default TRAINYARD_STALL_TIMEOUT_S).",
    )
    checkpoint: CheckpointPolicy | None = None

    def gpus(self) -> int:
        """The devices asked for: `resources.gpus`, else 1 for `gpu: true`, else 0 (any CPU worker)."""
        if self.resources is not None:
            return self.resources.gpus
        return 1 if self.gpu else 0

    def training_spec(self) -> TrainingSpec:
        return TrainingSpec(
            model=self.model,
            compile=self.compile,
            fit=self.fit,
            preprocessing=self.preprocessing,
            distill=self.distill,
        )


class Progress(BaseModel):
    epoch: int
    epochs: int


class ModelRef(BaseModel):
    name: str
    version: int


class CheckpointOut(BaseModel):
    epoch: int
    batch: int | None
    attempt: int
    saved_at: datetime


class _JobFields(BaseModel):
    """Every field both views share: all of the job but its spec."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str  # "train", or "compress" (POST /v1/models/{name}/versions/{v}/compress)
    name: str
    project: str  # app.auth: the project of its dataset
    status: JobStatus
    dataset_id: str
    register_as: str
    queue: str
    progress: Progress
    metrics: dict[str, Any]
    error: str | None
    model: ModelRef | None
    attempt: int
    handbacks: int
    resumed_from_epoch: int | None
    checkpoint: CheckpointOut | None
    gpus: int
    # What the current attempt trains on (app.ml.distribution.DeviceReport); null before it starts.
    resources: dict[str, Any] | None
    # Why a queued job is not starting, when the reason is known ("waiting for a worker on training.gpu").
    waiting_for: str | None
    max_runtime_s: int | None
    runtime_s: float
    last_exit: str | None
    performance: PerformanceRecord | None
    worker: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def fields_of(job: Job, waiting_for: str | None) -> dict[str, Any]:
        model = None
        if job.model_name is not None and job.model_version is not None:
            model = ModelRef(name=job.model_name, version=job.model_version)
        return {
            "id": job.id,
            "kind": job.kind or "train",
            "name": job.name,
            "project": job.project,
            "status": job.status,
            "dataset_id": job.dataset_id,
            "register_as": job.register_as,
            "queue": job.queue,
            "progress": Progress(epoch=job.epoch, epochs=job.epochs),
            "metrics": job.metrics,
            "error": job.error,
            "model": model,
            "attempt": job.attempt,
            "handbacks": job.handbacks,
            "resumed_from_epoch": job.resumed_from_epoch,
            "checkpoint": _checkpoint_of(job),
            "gpus": job.gpus,
            "resources": job.resources,
            "waiting_for": waiting_for,
            "max_runtime_s": job.max_runtime_s,
            "runtime_s": round(job.runtime_s, 3),
            "last_exit": job.last_exit,
            "performance": PerformanceRecord.model_validate(job.performance) if job.performance else None,
            "worker": job.worker,
            "cancel_requested": job.cancel_requested,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
        }


class JobOut(_JobFields):
    """The whole job object (`?view=full`, and the `end` event of its stream): the stored spec too."""

    view: Literal["full"] = "full"
    spec: dict[str, Any]

    @classmethod
    def of(cls, job: Job, waiting_for: str | None = None) -> "JobOut":
        return cls(spec=job.spec, **cls.fields_of(job, waiting_for))


class SpecSummary(BaseModel):
    """A few figures of the stored spec, enough to tell jobs apart in a list."""

    layers: int | None = Field(description="the model's layers (train jobs); null for compress jobs")
    optimizer: str | None = Field(description="`compile.optimizer`'s name or type")
    loss: str | None = Field(description="`compile.loss`'s name or type; null when given per output")
    batch_size: int | None
    method: str | None = Field(description="compress jobs: `int8`, `float16` or `prune`")

    @classmethod
    def of(cls, spec: dict[str, Any]) -> "SpecSummary":
        model, compile_, fit = spec.get("model") or {}, spec.get("compile") or {}, spec.get("fit") or {}
        layers = model.get("layers")
        return cls(
            layers=len(layers) if isinstance(layers, list) else None,
            optimizer=_name_of(compile_.get("optimizer")),
            loss=_name_of(compile_.get("loss")),
            batch_size=fit.get("batch_size"),
            method=(spec.get("compress") or {}).get("method"),
        )


def _name_of(value: Any) -> str | None:
    """A spec name (`"adam"`) or the `type` of an object (`{"type": "SGD", ...}`); else null."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return str(value["type"])
    return None


class JobSummary(_JobFields):
    """A job as answered by default: every field but the spec, which is summarised and linked."""

    view: Literal["summary"] = "summary"
    spec_summary: SpecSummary
    spec_url: str = Field(description="where the job with its full spec lives: `/v1/jobs/{id}?view=full`")

    @classmethod
    def of(cls, job: Job, waiting_for: str | None = None) -> "JobSummary":
        return cls(
            spec_summary=SpecSummary.of(job.spec),
            spec_url=f"/v1/jobs/{job.id}?view=full",
            **cls.fields_of(job, waiting_for),
        )


# Either view, told apart by `view` (a discriminator in the OpenAPI document too).
JobView = Annotated[JobSummary | JobOut, Field(discriminator="view")]


def _checkpoint_of(job: Job) -> CheckpointOut | None:
    if job.checkpoint_attempt is None or job.checkpoint_epoch is None or job.checkpoint_saved_at is None:
        return None
    return CheckpointOut(
        epoch=job.checkpoint_epoch,
        batch=job.checkpoint_batch,
        attempt=job.checkpoint_attempt,
        saved_at=job.checkpoint_saved_at,
    )


class JobPage(BaseModel):
    items: list[JobView]
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
