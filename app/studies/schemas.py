"""Request and response bodies of /v1/studies."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.jobs.schemas import NAME_PATTERN, ModelRef
from app.models import Study, StudyStatus, StudyTrial, TrialStatus

Choice = str | int | float | bool | None


class ParamType(StrEnum):
    INT = "int"
    FLOAT = "float"
    CATEGORICAL = "categorical"


class Param(BaseModel):
    """One dimension of the search space: the values the point of the base request may take."""

    model_config = ConfigDict(extra="forbid")

    type: ParamType
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    choices: list[Choice] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type is ParamType.CATEGORICAL:
            if not self.choices:
                raise ValueError("a categorical parameter needs `choices` (a non-empty list)")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("a categorical parameter takes `choices` only (no low, high, log, step)")
            return self
        if self.choices is not None:
            raise ValueError(f"`choices` is for categorical parameters; an {self.type} one takes low and high")
        if self.low is None or self.high is None:
            raise ValueError(f"an {self.type} parameter needs `low` and `high`")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log: true needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna samples one or the other)")
        if self.type is ParamType.INT:
            for name, value in (("low", self.low), ("high", self.high), ("step", self.step)):
                if value is not None and value != int(value):
                    raise ValueError(f"an int parameter's {name} must be a whole number, not {value}")
        return self


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str = Field(
        min_length=1, max_length=128, description="An epoch log of the trials' jobs: `val_accuracy`, `loss`, ..."
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        default=None, description="Default: minimize for a loss or error, maximize otherwise."
    )

    def goal(self) -> Literal["maximize", "minimize"]:
        if self.direction is not None:
            return self.direction
        lowered = self.metric.lower()
        return "minimize" if any(w in lowered for w in ("loss", "error", "mse", "mae")) else "maximize"


class StudyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    dataset_id: str = Field(min_length=1, max_length=64)
    base: dict[str, Any] = Field(description="A job request (POST /v1/jobs) without dataset_id.")
    search_space: dict[str, Param] = Field(
        min_length=1,
        max_length=32,
        description='Keyed by JSON Pointer into `base`, e.g. "/model/layers/0/units".',
    )
    objective: Objective
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "hyperband"] | None = None
    max_trials: int = Field(default=20, ge=1, le=1000)
    parallelism: int = Field(default=1, ge=1, le=64)
    max_runtime_s: int | None = Field(
        default=None, gt=0, description="No new trial after this; running ones are cancelled and the study ends."
    )
    # Room for the "-trials" suffix of the model the trials register under.
    register_as: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=100)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


class TrialOut(BaseModel):
    number: int
    job_id: str | None
    params: dict[str, Any]
    value: float | None
    status: TrialStatus
    # epoch → objective metric, as far as the trial got
    intermediate: dict[str, float]
    error: str | None

    @classmethod
    def of(cls, trial: StudyTrial) -> "TrialOut":
        return cls(
            number=trial.number,
            job_id=trial.job_id,
            params=trial.params,
            value=trial.value,
            status=trial.status,
            intermediate={str(k): float(v) for k, v in trial.intermediate.items()},
            error=trial.error,
        )


class StudyOut(BaseModel):
    id: str
    name: str
    project: str
    status: StudyStatus
    dataset_id: str
    objective: Objective
    sampler: str
    pruner: str | None
    max_trials: int
    parallelism: int
    register_as: str
    trials: list[TrialOut]
    best_trial: TrialOut | None
    model: ModelRef | None
    cancel_requested: bool
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, study: Study, trials: list[StudyTrial]) -> "StudyOut":
        request = StudyCreate.model_validate(study.request)
        outs = [TrialOut.of(trial) for trial in trials]
        best = next((out for out in outs if out.number == study.best_trial), None)
        model = None
        if study.model_name is not None and study.model_version is not None:
            model = ModelRef(name=study.model_name, version=study.model_version)
        return cls(
            id=study.id,
            name=study.name,
            project=study.project,
            status=study.status,
            dataset_id=study.dataset_id,
            objective=Objective(metric=request.objective.metric, direction=request.objective.goal()),
            sampler=request.sampler,
            pruner=request.pruner,
            max_trials=request.max_trials,
            parallelism=request.parallelism,
            register_as=request.register_as or study.name,
            trials=outs,
            best_trial=best,
            model=model,
            cancel_requested=study.cancel_requested,
            error=study.error,
            created_at=study.created_at,
            finished_at=study.finished_at,
        )


class StudyPage(BaseModel):
    items: list[StudyOut]
    next_cursor: str | None
