"""Bring the schema to the newest revision; safe when several processes start at once."""

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

import migrations
from app.config import Settings
from app.db.session import get_engine

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every trainyard process.
_PG_ADVISORY_LOCK_ID = 7_304_118_522


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_to_head(settings: Settings) -> None:
    """Run pending Alembic migrations under a cross-process lock."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.ensure_dirs()
        with _file_lock(settings.home_dir / ".migrate.lock"), get_engine(url).begin() as conn:
            _upgrade(conn, url)
        return
    with get_engine(url).connect() as conn:
        if conn.dialect.name == "postgresql":
            # Session-level lock: concurrent starters wait here, then find nothing to do. They
            # wait as long as the migration takes, not the sessions' usual lock_timeout.
            conn.execute(text("SET LOCAL lock_timeout = 0"))
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_ADVISORY_LOCK_ID})
            conn.commit()
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # DDL waits for the tables' readers to finish (a frozen one is ended by the
                    # server's idle_in_transaction_session_timeout).
                    conn.execute(text("SET LOCAL lock_timeout = 0"))
                _upgrade(conn, url)
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_ADVISORY_LOCK_ID})
                conn.commit()


def _upgrade(conn: Connection, url: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
