"""GET /v1/jobs/{id}/logs: the lines a worker's JobLogHandler wrote for the job, all attempts."""

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.jobs.job_logs import JobLogHandler, log_path
from app.logs import job_context
from tests.factories import job_request
from tests.job_moves import claim, fail

log = logging.getLogger("tests.job_logs")


@pytest.fixture
def handler(settings: Settings) -> Iterator[JobLogHandler]:
    """The handler a worker process installs, on this test's artifact store."""
    handler = JobLogHandler(settings.artifacts_dir)
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_lines_about_a_job_from_every_attempt_are_served_in_order(
    client: TestClient, settings: Settings, dataset_id: str, handler: JobLogHandler
) -> None:
    job_id = client.post("/v1/jobs", json=job_request(dataset_id)).json()["id"]
    with job_context(job_id):
        log.info("attempt 1 claimed")
        log.error("attempt 1 died")
    log.info("a line about no job")
    # Celery's own line names the job only through its task id:
    log.info("Task trainyard.train_job[job-%s-2] received", job_id)
    with job_context(job_id):
        log.info("attempt 2 failed: ValueError: bad data")

    response = client.get(f"/v1/jobs/{job_id}/logs")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "attempt 1 claimed",
        "attempt 1 died",
        f"Task trainyard.train_job[job-{job_id}-2] received",
        "attempt 2 failed: ValueError: bad data",
    ]
    assert all(f"job={job_id}" in line for line in lines)


def test_a_job_id_that_is_not_ours_never_becomes_a_path(settings: Settings, handler: JobLogHandler) -> None:
    with job_context("../../etc"):
        log.info("nowhere")

    assert not (settings.artifacts_dir / "etc").exists()
    assert not log_path(settings.artifacts_dir, "../../etc").exists()


def test_follow_sends_the_log_of_an_ended_job_and_closes(
    client: TestClient, settings: Settings, dataset_id: str, handler: JobLogHandler
) -> None:
    job_id = client.post("/v1/jobs", json=job_request(dataset_id)).json()["id"]
    claim(settings, job_id)
    with job_context(job_id):
        log.info("training failed")
    fail(settings, job_id)

    response = client.get(f"/v1/jobs/{job_id}/logs", params={"follow": "true"})

    assert response.status_code == 200 and response.headers["x-accel-buffering"] == "no"
    assert response.text.endswith("training failed\n")


def test_a_job_with_no_lines_yet_has_an_empty_log_and_an_unknown_job_is_404(
    client: TestClient, dataset_id: str
) -> None:
    job_id = client.post("/v1/jobs", json=job_request(dataset_id)).json()["id"]

    assert client.get(f"/v1/jobs/{job_id}/logs").text == ""
    assert client.get("/v1/jobs/nope/logs").status_code == 404
    assert client.get("/v1/jobs/nope/logs", params={"follow": "true"}).status_code == 404
