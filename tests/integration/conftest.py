"""PostgreSQL, Redis, a real `trainyard worker` subprocess, and the API in-process on them."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.main import create_app
from tests.conftest import POSTGRES_HOST, POSTGRES_PORT, REDIS_HOST, REDIS_PORT, require_service
from tests.services import TrainyardProcess, fresh_postgres_database, fresh_redis_url

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def production_settings(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Production mode: PostgreSQL and Redis, short leases so a lost worker is noticed fast."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    settings = Settings(
        home=tmp_path_factory.mktemp("shared-volume"),
        database_url=postgres_url,
        broker_url=fresh_redis_url(),
        job_lease_s=4.0,
        heartbeat_s=0.5,
        sweep_interval_s=0.5,
    )
    upgrade_to_head(settings)
    return settings


@pytest.fixture(scope="session")
def worker(production_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainyardProcess]:
    log_path = Path(tmp_path_factory.mktemp("logs")) / "worker.log"
    process = TrainyardProcess(["worker", "--concurrency", "1"], production_settings, log_path)
    try:
        process.wait_for_log("child ready", timeout=120)
        yield process
    finally:
        process.stop()


@pytest.fixture
def api(production_settings: Settings, worker: TrainyardProcess) -> Iterator[TestClient]:
    with TestClient(create_app(production_settings), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture(scope="session")
def served_api(
    production_settings: Settings, worker: TrainyardProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`trainyard serve` as its own process on the production settings (no worker of its own):
    the API, the worker and the test are three processes. Yields its base URL."""
    from tests.e2e.conftest import free_port, wait_until_ready

    port = free_port()
    log_path = Path(tmp_path_factory.mktemp("logs")) / "serve.log"
    process = TrainyardProcess(["serve", "--port", str(port)], production_settings, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/readyz")
        yield url
    finally:
        process.stop()
