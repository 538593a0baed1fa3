"""ORM tables. Importing this package registers every table on Base.metadata."""

from app.models.api_key import DEFAULT_PROJECT, ApiKey
from app.models.dataset import Dataset
from app.models.job import Job, JobEpoch, JobEvent, JobStatus, StreamEvent, Worker
from app.models.model_version import ModelLabel, ModelVersion
from app.models.study import Study, StudyStatus, StudyTrial, TrialStatus

__all__ = [
    "DEFAULT_PROJECT",
    "ApiKey",
    "Dataset",
    "Job",
    "JobEpoch",
    "JobEvent",
    "JobStatus",
    "ModelLabel",
    "ModelVersion",
    "StreamEvent",
    "Study",
    "StudyStatus",
    "StudyTrial",
    "TrialStatus",
    "Worker",
]
