"""What each dashboard fragment shows, assembled from the domain services as typed view models.

The fragments are the only part of /ui that holds project data; every function here takes the
caller's project filter (None: an admin key, every project) exactly as the /v1 routes do, so
another project's ids are NotFound here too.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets import service as datasets
from app.datasets.schemas import DatasetOut, PreviewOut, StatsOut
from app.jobs import service as jobs
from app.jobs.schemas import JobEventOut, JobOut
from app.models import JobStatus
from app.registry import service as registry

PREVIEW_ROWS = 20


@dataclass(frozen=True)
class JobRows:
    """One keyset page of the jobs table."""

    jobs: list[JobOut]
    next_cursor: str | None


@dataclass(frozen=True)
class JobDetail:
    job: JobOut
    history: list[JobEventOut]
    epochs: list[dict[str, Any]]  # the metrics table: one row per epoch of the latest history
    columns: list[str]  # its metric columns, in first-seen order


@dataclass(frozen=True)
class VersionRow:
    version: int
    job_id: str
    created_at: str
    metrics: dict[str, Any]


@dataclass(frozen=True)
class ModelView:
    name: str
    latest_version: int
    labels: dict[str, int]
    versions: list[VersionRow]


@dataclass(frozen=True)
class DatasetView:
    dataset: DatasetOut
    preview: PreviewOut
    stats: StatsOut


def job_rows(
    session: Session,
    settings: Settings,
    limit: int,
    cursor: str | None,
    status: JobStatus | None,
    name: str | None,
    project: str | None,
) -> JobRows:
    """A page of jobs, newest first, through the same keyset pagination as GET /v1/jobs: the
    cost of a page does not grow with the number of jobs in the table."""
    page = jobs.list_page(session, limit, cursor, status=status, name=name, project=project)
    waiting = jobs.waiting_for(session, settings, page.items)
    return JobRows([JobOut.of(job, waiting.get(job.id)) for job in page.items], page.next_cursor)


def job_detail(session: Session, settings: Settings, job_id: str, project: str | None) -> JobDetail:
    job = jobs.get(session, job_id, project)
    history = [JobEventOut.model_validate(event) for event in jobs.events(session, job_id, project)]
    _, epochs = jobs.epochs(session, job_id, project)
    skip = {"epoch", "attempt", "finished_at"}
    columns: list[str] = []
    for row in epochs:
        columns.extend(key for key in row if key not in skip and key not in columns)
    waiting = jobs.waiting_for(session, settings, [job]).get(job.id)
    return JobDetail(JobOut.of(job, waiting), history, epochs, columns)


def models(session: Session, project: str | None) -> list[ModelView]:
    """Every model the caller can see with its labels and versions (newest first)."""
    shown: list[ModelView] = []
    for summary in registry.list_models(session, project):
        rows = [
            VersionRow(v.version, v.job_id, v.created_at.isoformat(timespec="seconds"), dict(v.metrics or {}))
            for v in registry.versions(session, summary.name, project=project)
        ]
        shown.append(ModelView(summary.name, summary.latest_version, dict(summary.labels), rows))
    return shown


def dataset(session: Session, settings: Settings, dataset_id: str, project: str | None) -> DatasetView:
    found = DatasetOut.model_validate(datasets.get(session, dataset_id, project))
    preview = PreviewOut.model_validate(datasets.preview(session, settings, dataset_id, PREVIEW_ROWS, project))
    stats = StatsOut.model_validate(datasets.stats(session, settings, dataset_id, project))
    return DatasetView(found, preview, stats)
