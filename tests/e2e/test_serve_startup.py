"""The first ten minutes (issue 10 item 8): `trainyard serve` as a new user meets it.

Real `python -m app.cli` subprocesses. A mistake (a database that cannot be opened, a port in
use) is one line saying what to do, a non-zero exit and no traceback, before anything slow
loads; "serving on" is logged only once the port answers.
"""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app import __version__
from app.config import Settings
from tests.e2e.conftest import free_port
from tests.services import TrainyardProcess, settings_env

pytestmark = pytest.mark.e2e

# What the refusal must come before: the old behaviour loaded the worker and a deep-learning
# framework first (5-70 s), then printed a traceback. Checked by what was imported, not by a clock
# (a loaded CI machine makes any time bound flaky).
SLOW_PACKAGES = {"keras", "tensorflow", "jax", "torch", "celery"}


Run = tuple[subprocess.CompletedProcess[str], set[str]]


def run_cli(args: list[str], settings: Settings, timeout: float = 60) -> Run:
    """Run the CLI with `-X importtime`; answer its result and the top-level packages it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "app.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    imported = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return result, imported


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], imported: set[str], *needles: str) -> None:
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("trainyard serve: ")]
    assert len(lines) == 1, output[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "app" in imported  # the import log was read
    assert imported & SLOW_PACKAGES == set(), imported & SLOW_PACKAGES


def test_version(tmp_path: Path) -> None:
    result, _ = run_cli(["--version"], Settings(home=tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"trainyard {__version__}"


def test_a_postgres_url_without_driver_gets_the_hint(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url="postgres://me:secret@db.example:5432/trainyard")
    result, imported = run_cli(["serve", "--port", str(free_port())], settings)
    assert_one_line_refusal(result, imported, "postgresql+psycopg://", "TRAINYARD_DATABASE_URL")
    said = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert not any("secret" in line for line in said)  # no credentials echoed


def test_a_missing_database_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{missing / 'trainyard.db'}")
    result, imported = run_cli(["serve", "--port", str(free_port())], settings)
    assert_one_line_refusal(result, imported, str(missing), "mkdir")


def test_a_database_server_that_is_down_is_named(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    settings = Settings(home=tmp_path, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/trainyard")
    result, imported = run_cli(["serve", "--port", str(free_port())], settings)
    assert_one_line_refusal(result, imported, "cannot open the database", "running")


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result, imported = run_cli(["serve", "--port", str(port)], Settings(home=tmp_path))
    assert_one_line_refusal(result, imported, f"port {port}", "--port")


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[tuple[TrainyardProcess, int]]:
    port = free_port()
    settings = Settings(home=tmp_path / "home", embedded_worker=False, access_log=False)
    process = TrainyardProcess(["serve", "--port", str(port)], settings, tmp_path / "serve.log")
    try:
        yield process, port
    finally:
        process.stop()


def test_serving_on_is_logged_when_the_port_answers(serve_process: tuple[TrainyardProcess, int]) -> None:
    process, port = serve_process
    process.wait_for_log("serving on http://127.0.0.1:", timeout=180)
    # At the moment of the line, not a retry later: the quick start pastes a curl right after it.
    response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    assert response.status_code == 200
    log = process.log()
    assert log.index("Application startup complete") < log.index("serving on")


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def running(pid: int) -> bool:
    try:  # a zombie (ended, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_stopping_serve_leaves_no_pool_process_behind(serve_process: tuple[TrainyardProcess, int], stop: str) -> None:
    # The spec-check and decoding processes hold Keras (~0.7 GB each): no orphans, whether serve
    # shuts down (SIGTERM) or is killed outright.
    process, _ = serve_process
    process.wait_for_log("serving on http://127.0.0.1:", timeout=180)
    pool = children(process.process.pid)
    assert pool  # started with the server, warm before the first request
    getattr(process.process, stop)()
    process.process.wait(timeout=60)
    deadline = time.monotonic() + 15
    while any(running(pid) for pid in pool) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in pool if running(pid)] == []
