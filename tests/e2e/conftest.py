"""`trainyard serve` in embedded mode (SQLite, local queue, its own worker) on a free port."""

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.factories import wait_for
from tests.services import TrainyardProcess

pytestmark = pytest.mark.e2e

UPLOAD_LIMIT = 4_000_000


@dataclass
class Server:
    url: str
    settings: Settings
    process: TrainyardProcess


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

    def ready() -> bool:
        if process.process.poll() is not None:
            raise AssertionError(f"serve exited:\n{process.log()[-5000:]}")
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, timeout=60, interval=0.3, what="trainyard serve to be ready")
        process.wait_for_log("child ready", timeout=120)  # the embedded worker
        yield Server(url=url, settings=settings, process=process)
    finally:
        process.stop()
