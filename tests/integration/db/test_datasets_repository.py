"""Dataset lookups by content on SQLite and PostgreSQL: one row per (bytes, parse options)."""

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.datasets import repository
from app.models import Dataset

pytestmark = pytest.mark.integration


def make_dataset(session: Session, sha256: str, options_hash: str | None) -> Dataset:
    dataset = Dataset(
        name="d",
        format="csv",
        sha256=sha256,
        options_hash=options_hash,
        size_bytes=1,
        n_rows=1,
        features={},
        target={},
        stats={"features": [], "target": {"kind": "regression", "columns": []}},
        storage_path="x",
    )
    session.add(dataset)
    session.commit()
    return dataset


def test_a_dataset_is_found_by_its_bytes_and_parse_options(session: Session) -> None:
    stored = make_dataset(session, "a" * 64, "o1")
    make_dataset(session, "a" * 64, "o2")
    found = repository.find_by_content(session, "default", "a" * 64, "o1")
    assert found is not None and found.id == stored.id
    assert repository.find_by_content(session, "default", "b" * 64, "o1") is None
    assert repository.find_by_content(session, "another", "a" * 64, "o1") is None  # per project


def test_a_second_row_with_the_same_bytes_and_options_is_refused(session: Session) -> None:
    make_dataset(session, "c" * 64, "o1")
    with pytest.raises(IntegrityError):
        make_dataset(session, "c" * 64, "o1")
    session.rollback()


def test_rows_without_recorded_options_never_collide(session: Session) -> None:
    make_dataset(session, "d" * 64, None)
    make_dataset(session, "d" * 64, None)
    assert repository.find_by_content(session, "default", "d" * 64, "o1") is None
