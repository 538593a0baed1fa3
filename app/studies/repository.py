"""Queries on studies and their trials (no Keras: the worker's main process drives studies)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.pagination import Page, paginate
from app.models import Study, StudyTrial

# The trials register their models under `<register_as>-trials`; the best one, at the end,
# under `register_as` itself.
TRIALS_SUFFIX = "-trials"


def get(session: Session, study_id: str) -> Study | None:
    return session.get(Study, study_id, populate_existing=True)


def trials(session: Session, study_id: str) -> list[StudyTrial]:
    query = select(StudyTrial).where(StudyTrial.study_id == study_id).order_by(StudyTrial.number)
    return list(session.scalars(query.execution_options(populate_existing=True)).all())


def list_page(session: Session, limit: int, cursor: str | None, project: str | None) -> Page[Study]:
    query = select(Study)
    if project is not None:
        query = query.where(Study.project == project)
    return paginate(session, query, Study.created_at, Study.id, limit, cursor)
