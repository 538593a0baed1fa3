"""Queries on API keys, and the project totals the per-project limits read."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import ApiKey, Dataset, Job, JobStatus


def by_hash(session: Session, hashed: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == hashed)).first()


def get(session: Session, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def list_keys(session: Session, project: str | None) -> Sequence[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if project is not None:
        query = query.where(ApiKey.project == project)
    return session.scalars(query).all()


def touch(session: Session, key_id: str, at: datetime) -> None:
    """Record a use; only ever moves `last_used_at` forward."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < at))
        .values(last_used_at=at)
        .execution_options(synchronize_session=False)
    )


def active_jobs(session: Session, project: str) -> int:
    query = select(func.count(Job.id)).where(
        Job.project == project, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
    )
    return int(session.scalar(query) or 0)


def dataset_bytes(session: Session, project: str) -> int:
    total = session.scalar(select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(Dataset.project == project))
    return int(total or 0)
