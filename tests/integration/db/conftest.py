"""A session per test on SQLite and on PostgreSQL, inside a transaction rolled back afterwards."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import get_engine
from tests.conftest import POSTGRES_HOST, POSTGRES_PORT, require_service
from tests.services import fresh_postgres_database


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    settings = Settings(home=Path(tmp_path_factory.mktemp("sqlite")))
    upgrade_to_head(settings)
    return settings.sqlalchemy_url


@pytest.fixture(scope="session")
def repository_postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    with fresh_postgres_database() as url:
        upgrade_to_head(Settings(home=Path(tmp_path_factory.mktemp("pg")), database_url=url))
        yield url


def savepoint_capable(engine: Engine) -> Engine:
    """pysqlite begins transactions lazily, which breaks SAVEPOINT; let SQLAlchemy begin them."""

    @event.listens_for(engine, "connect")
    def _no_pysqlite_transactions(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def session(request: pytest.FixtureRequest) -> Iterator[Session]:
    if request.param == "sqlite":
        engine = savepoint_capable(create_engine(request.getfixturevalue("sqlite_url")))
    else:
        engine = get_engine(request.getfixturevalue("repository_postgres_url"))
    with engine.connect() as connection:
        outer = connection.begin()
        db_session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield db_session
        finally:
            db_session.close()
            outer.rollback()
