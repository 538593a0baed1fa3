"""Engine and session factories, one engine per database URL per process."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings
from app.db.base import utcnow

_engines: dict[str, Engine] = {}


def get_engine(url: str) -> Engine:
    """The process's engine for `url` (one per URL: engines own connection pools)."""
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _configure_sqlite)
        elif url.startswith("postgresql"):
            connect_args = {"options": session_limits_options(get_settings())}
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        _engines[url] = engine
    return engine


def session_limits_options(settings: Settings) -> str:
    """Every session's limits on waiting. Without them one process frozen inside a transaction
    (SIGSTOP, a paused VM, a cut network) holds its row and advisory locks for ever, and every
    other process that needs them — the API answering a cancel included — waits for ever too.
    The settings are process-wide (TRAINYARD_DB_*): each process sets them on its own sessions."""
    lock_ms = round(settings.db_lock_timeout_s * 1000)
    idle_ms = round(settings.db_idle_transaction_timeout_s * 1000)
    return f"-c lock_timeout={lock_ms} -c idle_in_transaction_session_timeout={idle_ms}"


def dispose_engines(*, after_fork: bool = False) -> None:
    """Drop pooled connections. In a forked child pass `after_fork=True`: the parent's sockets
    are left alone (closing them would break the parent) and never reused by the child."""
    for engine in _engines.values():
        engine.dispose(close=not after_fork)
    if not after_fork:
        _engines.clear()
        get_sessionmaker.cache_clear()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@lru_cache(maxsize=8)
def get_sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error (for workers and scripts)."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def database_now(session: Session) -> datetime:
    """The database server's clock: leases set and compared by one clock, whatever each
    machine's own clock says. SQLite is embedded, so its clock is this machine's."""
    if session.get_bind().dialect.name == "postgresql":
        now: datetime = session.scalar(select(func.now()))  # type: ignore[assignment]
        return now
    return utcnow()
