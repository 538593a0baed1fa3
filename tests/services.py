"""Real services for integration and end-to-end tests: a fresh PostgreSQL database, a Redis
database, and `trainyard` subprocesses whose logs are kept for the failure report."""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

from app.config import Settings
from tests.conftest import POSTGRES_HOST, POSTGRES_PORT, REDIS_HOST, REDIS_PORT
from tests.factories import wait_for

ADMIN_DSN = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user=postgres dbname=postgres"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database for this test run; drop it afterwards. Yields its URL."""
    name = f"trainyard_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        from app.db.session import dispose_engines

        dispose_engines()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_redis_url() -> str:
    """A Redis database of our own (index 15, or TRAINYARD_TEST_REDIS_DB), emptied first.

    Two test runs at once on one machine need different indexes: their workers would
    otherwise take each other's jobs."""
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{os.environ.get('TRAINYARD_TEST_REDIS_DB', '15')}"
    redis.Redis.from_url(url).flushdb()
    return url


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"TRAINYARD_{name.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


class TrainyardProcess:
    """A `trainyard <command>` subprocess with its output in a log file."""

    def __init__(
        self, args: list[str], settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        """`extra_env`: more variables for the process (a worker's KERAS_BACKEND, say)."""
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=settings_env(settings) | (extra_env or {}),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float) -> None:
        def seen() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"process exited with {self.process.returncode}:\n{self.log()[-5000:]}")
            return text in self.log()

        wait_for(seen, timeout, interval=0.2, what=f"{text!r} in {self.log_path.name}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
