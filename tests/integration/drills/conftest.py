"""Fault drills (issue 8): one set of real services per module.

Each module gets a fresh PostgreSQL database, a Redis database of its own (index 14, or
TRAINYARD_DRILLS_REDIS_DB; a module may bring its own `redis-server` instead), two
`trainyard worker` subprocesses with short leases, and the API in-process *without* its
lifespan: the test process never runs a recovery sweep, so every recovery a drill sees was
done by the workers (or by a `trainyard serve` subprocess where a drill starts one).
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.main import create_app
from tests.conftest import POSTGRES_HOST, POSTGRES_PORT, REDIS_HOST, REDIS_PORT, require_service
from tests.factories import wait_for
from tests.integration.drills.harness import DRILL_SETTINGS, Jobs, ServeProcess, WorkerPool
from tests.services import fresh_postgres_database

WORKERS = 2


@pytest.fixture(scope="module")
def broker_url() -> str:
    """The shared Redis, on a database index no other suite uses, emptied first."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{os.environ.get('TRAINYARD_DRILLS_REDIS_DB', '14')}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("drill-logs"))


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    """Settings a module changes from DRILL_SETTINGS (override this fixture in the module)."""
    return {}


@pytest.fixture(scope="module")
def drill_settings(
    broker_url: str, settings_overrides: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    with fresh_postgres_database() as database_url:
        settings = Settings(
            home=tmp_path_factory.mktemp("drill-volume"),
            database_url=database_url,
            broker_url=broker_url,
            **(DRILL_SETTINGS | settings_overrides),
        )
        upgrade_to_head(settings)
        yield settings


@pytest.fixture(scope="module")
def proxied() -> bool:
    """Whether the module's workers reach PostgreSQL through proxies a drill can cut."""
    return False


@pytest.fixture(scope="module")
def workers(drill_settings: Settings, log_dir: Path, proxied: bool) -> Iterator[WorkerPool]:
    pool = WorkerPool(drill_settings, log_dir, proxied=proxied)
    try:
        pool.start(WORKERS)
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="module")
def api(drill_settings: Settings) -> TestClient:
    """The API in-process for reading and submitting. Not entered as a context manager: its
    lifespan (the recovery sweep) never runs here."""
    return TestClient(create_app(drill_settings), base_url="http://127.0.0.1")


@pytest.fixture
def jobs(api: TestClient, drill_settings: Settings, workers: WorkerPool) -> Iterator[Jobs]:
    """Two live workers before the drill; no job left running after it."""
    workers.ensure(WORKERS)
    client = Jobs(api, drill_settings)
    yield client
    for job in client.leftovers():
        api.post(f"/v1/jobs/{job['id']}/cancel")
    # A job the drill left stuck does not stop the next drill: that one's jobs are new.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not client.leftovers(), 60, interval=0.5, what="the drill's jobs to end")


@pytest.fixture(scope="module")
def serve(drill_settings: Settings, log_dir: Path) -> Iterator[ServeProcess]:
    """`trainyard serve` as a subprocess (external workers), for drills over real HTTP. One per
    module: a drill that kills it comes last."""
    process = ServeProcess(drill_settings, log_dir / "serve.log")
    try:
        yield process
    finally:
        process.stop()
