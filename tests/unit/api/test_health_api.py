"""/readyz: ready only when a worker consumes every queue that has jobs waiting."""

import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import session_scope
from app.embedded.supervisor import Supervisor
from app.main import create_app
from tests.factories import job_row, wait_for, worker_row


def add_rows(settings: Settings, *rows: object) -> None:
    from app.db.base import utcnow

    with session_scope(settings.sqlalchemy_url) as session:
        session.add_all([row(utcnow()) if callable(row) else row for row in rows])


def test_ready_without_workers_while_no_job_waits_once_the_spec_check_process_has_started(
    client: TestClient,
) -> None:
    # The spec-check process imports Keras as it starts: until then a submit would wait for it.
    response = wait_for(
        lambda: client.get("/readyz") if client.get("/readyz").status_code == 200 else None,
        timeout=180,
        interval=0.2,
        what="the spec-check process to start",
    )
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "workers": "ok", "spec_checks": "ok"},
    }


def test_unavailable_naming_the_queue_while_its_jobs_wait_for_a_worker(client: TestClient, settings: Settings) -> None:
    add_rows(
        settings,
        job_row(queue="training.gpu"),
        lambda now: worker_row("cpu-only", "training", now),
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "workers: no live worker consumes queue 'training.gpu' (1 job queued)"


def test_ready_when_a_live_worker_consumes_the_queue(client: TestClient, settings: Settings) -> None:
    add_rows(settings, job_row(queue="training"), lambda now: worker_row("w", "training,training.gpu", now))
    assert client.get("/readyz").status_code == 200


@pytest.fixture
def embedded_client(settings: Settings) -> Iterator[TestClient]:
    """The app as `serve` runs it, with a supervisor that never started its worker."""
    upgrade_to_head(settings)
    supervisor = Supervisor(["true"], consuming=lambda pid: False, after_exit=lambda pid: None, stop_timeout_s=1)
    with TestClient(create_app(settings, embedded_worker=supervisor), base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_unavailable_while_the_embedded_worker_does_not_run(embedded_client: TestClient, settings: Settings) -> None:
    add_rows(settings, job_row(queue="training"))
    response = embedded_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"] == (
        "no live worker consumes queue 'training' (1 job queued), because the embedded worker is not running yet"
    )
    assert response.json()["embedded_worker"] == {"pid": None, "consuming": False, "restarts": 0}


def test_a_serving_only_process_is_ready_without_training_workers(settings: Settings) -> None:
    upgrade_to_head(settings)
    add_rows(settings, job_row(queue="training"))
    with TestClient(create_app(settings, serving_only=True), base_url="http://127.0.0.1") as serving:
        response = serving.get("/readyz")
    assert response.status_code == 200
    assert "workers" not in response.json()["checks"]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unavailable_naming_the_broker_when_it_cannot_be_reached(settings: Settings) -> None:
    upgrade_to_head(settings)
    down = Settings(home=settings.home, broker_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(down), base_url="http://127.0.0.1") as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["broker"].startswith("unreachable: ")
    assert response.json()["error"].startswith("broker: unreachable")


def test_unavailable_naming_the_database_when_it_cannot_be_reached(settings: Settings) -> None:
    down = Settings(home=settings.home, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/none")
    with TestClient(create_app(down), base_url="http://127.0.0.1") as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"].startswith("unreachable: ") and checks["broker"] == "ok"
    assert checks["workers"] == "unknown: the database is unreachable"
    assert response.json()["status"] == "unavailable"
