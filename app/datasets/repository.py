"""Queries on the datasets table."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.pagination import Page, paginate
from app.models import Dataset, Job, JobStatus


def get(session: Session, dataset_id: str, *, project: str | None = None, for_update: bool = False) -> Dataset | None:
    """The dataset, if it exists and (when `project` is given) belongs to that project."""
    query = select(Dataset).where(Dataset.id == dataset_id)
    if project is not None:
        query = query.where(Dataset.project == project)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def find_by_content(session: Session, project: str, sha256: str, options_hash: str) -> Dataset | None:
    """The project's dataset stored from these bytes with these parse options, if any."""
    query = select(Dataset).where(
        Dataset.project == project, Dataset.sha256 == sha256, Dataset.options_hash == options_hash
    )
    return session.scalars(query).first()


def list_page(session: Session, limit: int, cursor: str | None, project: str | None = None) -> Page[Dataset]:
    query = select(Dataset) if project is None else select(Dataset).where(Dataset.project == project)
    return paginate(session, query, Dataset.created_at, Dataset.id, limit, cursor)


def count_active_jobs(session: Session, dataset_id: str) -> int:
    query = select(Job.id).where(Job.dataset_id == dataset_id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
    return len(session.scalars(query).all())
