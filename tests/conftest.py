"""Shared fixtures: settings on a temporary home, and the service checks CI relies on."""

import os
import socket
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from app.config import Settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Property tests explore new examples on every local run; on CI they replay a fixed set, so a
# submission is never failed by a draw no one has seen (run locally to keep finding new ones).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is down, except on CI, where a skipped integration test is a failure."""
    if reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: integration tests must run)")
    pytest.skip(message)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-mode settings on a private home directory."""
    return Settings(home=tmp_path / "home")
