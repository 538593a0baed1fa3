"""Queries on model versions and labels."""

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import ModelLabel, ModelVersion


def model_names(session: Session, project: str | None = None) -> Sequence[tuple[str, int]]:
    """Each model name (of `project`, or every one) with its latest version, by name."""
    query = select(ModelVersion.name, func.max(ModelVersion.version))
    if project is not None:
        query = query.where(ModelVersion.project == project)
    query = query.group_by(ModelVersion.name).order_by(ModelVersion.name)
    return [(name, int(version)) for name, version in session.execute(query)]


def name_owner(session: Session, name: str) -> str | None:
    """The project a model name belongs to (its first version's), or None for a new name."""
    query = select(ModelVersion.project).where(ModelVersion.name == name).order_by(ModelVersion.version).limit(1)
    return session.scalars(query).first()


def versions(session: Session, name: str) -> Sequence[ModelVersion]:
    query = select(ModelVersion).where(ModelVersion.name == name).order_by(ModelVersion.version.desc())
    return session.scalars(query).all()


def get_version(session: Session, name: str, version: int) -> ModelVersion | None:
    query = select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    return session.scalars(query).first()


def latest_version(session: Session, name: str) -> ModelVersion | None:
    query = select(ModelVersion).where(ModelVersion.name == name).order_by(ModelVersion.version.desc()).limit(1)
    return session.scalars(query).first()


def labels(session: Session, name: str) -> dict[str, int]:
    rows = session.scalars(select(ModelLabel).where(ModelLabel.name == name))
    return {row.label: row.version for row in rows}


def label_version(session: Session, name: str, label: str) -> int | None:
    row = session.get(ModelLabel, (name, label))
    return row.version if row else None


def set_label(session: Session, name: str, label: str, version: int) -> None:
    row = session.get(ModelLabel, (name, label))
    if row is None:
        session.add(ModelLabel(name=name, label=label, version=version))
    else:
        row.version = version
