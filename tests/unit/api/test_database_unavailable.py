"""A database that cannot answer is a 503 with Retry-After on every route that needs it, never a
500: the client may retry, and nothing was half-done."""

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket is closed


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/gone?connect_timeout=2",
        auth="off",
    )
    # Not entered: the lifespan's recovery sweep would meet the same dead database.
    return TestClient(create_app(settings), base_url="http://127.0.0.1")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/0123456789abcdef0123456789abcdef"),
        ("POST", "/v1/jobs/0123456789abcdef0123456789abcdef/cancel"),
        ("GET", "/v1/datasets"),
        ("GET", "/v1/models"),
    ],
)
def test_a_route_that_needs_the_database_answers_503_while_it_is_unreachable(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path)

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert "database is unreachable" in response.json()["error"]
