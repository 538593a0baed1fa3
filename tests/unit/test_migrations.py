"""Migrations on SQLite: the dataset dedupe revision keeps old rows and goes back down cleanly.

(The integration suite runs every revision on PostgreSQL: its fixtures upgrade a fresh database
to head.)
"""

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from app.config import Settings
from app.db.migrate import alembic_config

BEFORE_DEDUPE = "9ed4cf729c2d"
INSERT_DATASET = text(
    "INSERT INTO datasets (id, name, format, sha256, size_bytes, n_rows, features, target, "
    "storage_path, created_at) VALUES (:id, 'd', 'csv', :sha, 1, 1, '{}', '{}', :id, "
    "'2026-01-01 00:00:00')"
)


def test_old_rows_survive_the_dedupe_revision_and_never_collide(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    settings.ensure_dirs()
    config = alembic_config(settings.sqlalchemy_url)
    command.upgrade(config, BEFORE_DEDUPE)
    engine = create_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(INSERT_DATASET, {"id": "old", "sha": "a" * 64})

    command.upgrade(config, "head")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT options_hash, stats FROM datasets")).all() == [(None, None)]
        conn.execute(INSERT_DATASET, {"id": "older", "sha": "a" * 64})  # NULL hashes differ
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE datasets SET options_hash = 'o'"))

    command.downgrade(config, BEFORE_DEDUPE)
    columns = {c["name"] for c in inspect(engine).get_columns("datasets")}
    assert "options_hash" not in columns and "stats" not in columns
    engine.dispose()


def test_the_warnings_revision_keeps_old_datasets_and_goes_back_down(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    settings.ensure_dirs()
    config = alembic_config(settings.sqlalchemy_url)
    command.upgrade(config, "durable_0001_jobs")
    engine = create_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(INSERT_DATASET, {"id": "old", "sha": "a" * 64})

    command.upgrade(config, "dataset_0002_warnings")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT warnings FROM datasets")).all() == [(None,)]
    command.downgrade(config, "durable_0001_jobs")
    assert "warnings" not in {c["name"] for c in inspect(engine).get_columns("datasets")}


def test_the_job_stream_revision_goes_up_and_back_down(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    settings.ensure_dirs()
    config = alembic_config(settings.sqlalchemy_url)
    command.upgrade(config, "live_0005_events")
    engine = create_engine(settings.sqlalchemy_url)
    assert "job_stream" in inspect(engine).get_table_names()

    command.downgrade(config, "auth_0003_keys")

    assert "job_stream" not in inspect(engine).get_table_names()


def test_the_auth_revision_puts_old_rows_in_the_default_project_and_goes_back_down(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    settings.ensure_dirs()
    config = alembic_config(settings.sqlalchemy_url)
    command.upgrade(config, "dataset_0002_warnings")
    engine = create_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(INSERT_DATASET, {"id": "old", "sha": "a" * 64})
        conn.execute(text("UPDATE datasets SET options_hash = 'o'"))

    command.upgrade(config, "auth_0003_keys")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT project FROM datasets")).all() == [("default",)]
        # the same bytes and options in another project are another dataset
        conn.execute(INSERT_DATASET, {"id": "theirs", "sha": "a" * 64})
        conn.execute(text("UPDATE datasets SET options_hash = 'o', project = 'beta' WHERE id = 'theirs'"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE datasets SET project = 'default' WHERE id = 'theirs'"))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM datasets WHERE id = 'theirs'"))

    command.downgrade(config, "dataset_0002_warnings")
    assert "project" not in {c["name"] for c in inspect(engine).get_columns("datasets")}
    assert "api_keys" not in inspect(engine).get_table_names()
    engine.dispose()
