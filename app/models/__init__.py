"""ORM tables. Importing this package registers every table on Base.metadata."""

from app.models.dataset import Dataset
from app.models.job import Job, JobEpoch, JobEvent, JobStatus
from app.models.model_version import ModelLabel, ModelVersion

__all__ = ["Dataset", "Job", "JobEpoch", "JobEvent", "JobStatus", "ModelLabel", "ModelVersion"]
