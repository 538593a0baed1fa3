"""Resolving `name[/versions/v|/labels/l]` to a model version, listing and labelling."""

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import ModelVersion
from app.registry import repository


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest_version: int
    labels: dict[str, int]


def list_models(session: Session, project: str | None = None) -> list[ModelSummary]:
    """The models of `project` (None: of every project)."""
    return [
        ModelSummary(name=name, latest_version=latest, labels=repository.labels(session, name))
        for name, latest in repository.model_names(session, project)
    ]


def resolve(
    session: Session,
    name: str,
    version: int | None = None,
    label: str | None = None,
    project: str | None = None,
) -> ModelVersion:
    """The version a URL names: explicit, by label, or the latest. NotFound otherwise, and for
    a model of another project than `project` (None: any project)."""
    if project is not None and repository.name_owner(session, name) != project:
        raise NotFound(f"model {name!r} does not exist")
    if label is not None:
        labelled = repository.label_version(session, name, label)
        if labelled is None:
            raise NotFound(f"model {name!r} has no label {label!r}")
        version = labelled
    found = (
        repository.latest_version(session, name) if version is None else repository.get_version(session, name, version)
    )
    if found is None:
        what = f"version {version} of model {name!r}" if version is not None else f"model {name!r}"
        raise NotFound(f"{what} does not exist")
    return found


def versions(
    session: Session,
    name: str,
    version: int | None = None,
    label: str | None = None,
    project: str | None = None,
) -> list[ModelVersion]:
    """All versions of `name` (newest first), or the one a version or label names."""
    if version is not None or label is not None:
        return [resolve(session, name, version, label, project)]
    found = list(repository.versions(session, name))
    if not found or (project is not None and found[-1].project != project):
        raise NotFound(f"model {name!r} does not exist")
    return found


def set_label(session: Session, name: str, label: str, version: int, project: str | None = None) -> None:
    resolve(session, name, version, project=project)
    repository.set_label(session, name, label, version)
    session.commit()
