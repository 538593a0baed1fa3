"""/metrics: the training series, read from the database, as a job moves through its life."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.db.base import utcnow
from app.db.session import session_scope
from app.jobs.states import Actor
from tests.factories import job_request, worker_row
from tests.job_moves import claim, epoch, fail, release


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def submit(client: TestClient, dataset_id: str) -> str:
    response = client.post("/v1/jobs", json=job_request(dataset_id))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_training_series_follow_jobs_workers_and_attempts(
    client: TestClient, settings: Settings, dataset_id: str
) -> None:
    before = scrape(client)
    submit(client, dataset_id)  # stays queued
    job_id = submit(client, dataset_id)
    assert client.post("/v1/jobs", json=job_request("missing")).status_code == 404
    with session_scope(settings.sqlalchemy_url) as session:
        session.add(worker_row("alive", "training,training.gpu", utcnow()))
        session.add(worker_row("gone", "training", utcnow() - timedelta(hours=1)))
    attempt = claim(settings, job_id)
    epoch(settings, job_id, attempt, 1)  # 100 rows in 0.5 s
    epoch(settings, job_id, attempt, 2)

    running = scrape(client)

    assert value(running, "trainyard_jobs", status="running") == 1
    assert value(running, "trainyard_jobs", status="queued") == 1
    assert value(running, "trainyard_jobs", status="timed_out") == 0
    assert value(running, "trainyard_queue_depth", queue="training") == 1
    assert value(running, "trainyard_workers", queue="training") == 1
    assert value(running, "trainyard_workers", queue="training.gpu") == 1
    assert value(running, "trainyard_training_samples_per_second", job=job_id) == pytest.approx(200)
    assert value(running, "trainyard_epoch_duration_seconds_count") == 2
    assert value(running, "trainyard_epoch_duration_seconds_bucket", le="0.5") == 2
    assert value(running, "trainyard_epoch_duration_seconds_bucket", le="0.25") == 0
    accepted = ("trainyard_submit_requests_total", (("outcome", "accepted"),))
    assert running[accepted] - before[accepted] == 2
    not_found = ("trainyard_submit_requests_total", (("outcome", "not_found"),))
    assert running[not_found] - before[not_found] == 1

    release(settings, job_id, Actor.SWEEP)  # its lease expired
    claim(settings, job_id)
    fail(settings, job_id)
    ended = scrape(client)

    assert value(ended, "trainyard_lease_expiries_total") == 1
    assert value(ended, "trainyard_job_resumes_total") == 1
    assert value(ended, "trainyard_jobs", status="failed") == 1
    assert value(ended, "trainyard_job_duration_seconds_count", status="failed") == 1
    assert not any(name == "trainyard_training_samples_per_second" for name, _ in ended)
