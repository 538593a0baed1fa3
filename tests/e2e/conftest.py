"""`trainyard serve` in embedded mode (SQLite, local queue, its own worker) on a free port."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.db.migrate import upgrade_to_head
from tests.factories import register_version, seed_mlp, wait_for
from tests.services import TrainyardProcess

pytestmark = pytest.mark.e2e

UPLOAD_LIMIT = 4_000_000


@dataclass
class Server:
    url: str
    settings: Settings
    process: TrainyardProcess


@contextmanager
def serving_tiny_model(home: Path, max_upload_bytes: int, auth: str = "auto") -> Iterator[Server]:
    """`trainyard serve` with no worker and one small registered model, `tiny` (for tests that
    hammer the API rather than train). `auth`: TRAINYARD_AUTH."""
    settings = Settings(
        home=home, embedded_worker=False, access_log=False, max_upload_bytes=max_upload_bytes, auth=auth
    )
    upgrade_to_head(settings)
    register_version(settings, "tiny", seed_mlp(features=4, classes=3, hidden=8))
    port = free_port()
    process = TrainyardProcess(["serve", "--port", str(port)], settings, home.parent / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/healthz")
        yield Server(url=url, settings=settings, process=process)
    finally:
        process.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = Path(tmp_path_factory.mktemp("embedded-home"))
    settings = Settings(home=home, max_upload_bytes=UPLOAD_LIMIT)
    port = free_port()
    process = TrainyardProcess(["serve", "--port", str(port)], settings, home.parent / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/readyz")
        process.wait_for_log("child ready", timeout=120)  # the embedded worker
        yield Server(url=url, settings=settings, process=process)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def serving_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`trainyard serve --serving-only` on its own home, with models registered beforehand:
    `tiny` (4 → 3, two versions, label `production` → 1) and `pair` (two inputs, two outputs).
    """
    from app.db.migrate import upgrade_to_head
    from tests.factories import register_version, seed_mlp, two_input_model

    home = Path(tmp_path_factory.mktemp("serving-home"))
    settings = Settings(home=home, resolve_ttl_s=0.2, access_log=False)
    upgrade_to_head(settings)
    register_version(settings, "tiny", seed_mlp(features=4, classes=3, hidden=8, seed=1))
    register_version(settings, "tiny", seed_mlp(features=4, classes=3, hidden=8, seed=2))
    register_version(settings, "pair", two_input_model())
    _set_label(settings, "tiny", "production", 1)
    port = free_port()
    process = TrainyardProcess(["serve", "--serving-only", "--port", str(port)], settings, home.parent / "serving.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/v2/health/ready")
        yield Server(url=url, settings=settings, process=process)
    finally:
        process.stop()


def wait_until_ready(process: TrainyardProcess, probe: str) -> None:
    """Poll `probe` until it answers 200; fail at once if the process exits."""

    def ready() -> bool:
        if process.process.poll() is not None:
            raise AssertionError(f"serve exited:\n{process.log()[-5000:]}")
        try:
            return httpx.get(probe, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # Generous: serve imports TensorFlow in its worker at start, slow on a busy 2-core machine.
    wait_for(ready, timeout=180, interval=0.2, what=f"{probe} to answer 200")


def _set_label(settings: Settings, name: str, label: str, version: int) -> None:
    from app.db.session import session_scope
    from app.registry import repository

    with session_scope(settings.sqlalchemy_url) as session:
        repository.set_label(session, name, label, version)
