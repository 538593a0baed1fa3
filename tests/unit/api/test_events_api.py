"""The job event stream (SSE) on the embedded database: every transition and epoch in order,
resumable with Last-Event-ID, driven by the same state functions a worker calls."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.session import session_scope
from app.events import log as event_log
from app.jobs import states
from app.jobs.states import ResumePoint
from app.models import JobStatus
from tests.factories import job_request
from tests.job_moves import claim, epoch, fail, release
from tests.sse import Event, parse

SSE = {"Accept": "text/event-stream"}


def submit(client: TestClient, dataset_id: str) -> str:
    response = client.post("/v1/jobs", json=job_request(dataset_id))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def stream(client: TestClient, job_id: str, last_event_id: str | None = None) -> list[Event]:
    headers = dict(SSE, **({"Last-Event-ID": last_event_id} if last_event_id else {}))
    response = client.get(f"/v1/jobs/{job_id}/events", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    return parse(response.text)


def summary(events: list[Event]) -> list[tuple[str, Any]]:
    def what(event: Event) -> Any:
        data = event.json()
        if event.event == "status":
            return (data["from_status"], data["to_status"], data["attempt"])
        if event.event == "epoch":
            return (data["epoch"], data["attempt"])
        return data["status"]

    return [(event.event, what(event)) for event in events]


@pytest.fixture
def failed_job(client: TestClient, settings: Settings, dataset_id: str) -> str:
    """A job that trained epochs 1-2, lost its worker, resumed from epoch 1, trained epoch 2
    again and failed."""
    job_id = submit(client, dataset_id)
    attempt = claim(settings, job_id)
    epoch(settings, job_id, attempt, 1)
    epoch(settings, job_id, attempt, 2)
    release(settings, job_id)
    resumed = claim(settings, job_id, ResumePoint(attempt=1, epoch=1, batch=None, saved_at=states.utcnow()))
    epoch(settings, job_id, resumed, 2)
    fail(settings, job_id)
    return job_id


def test_a_finished_job_streams_every_transition_and_epoch_in_order_then_end(
    client: TestClient, failed_job: str
) -> None:
    events = stream(client, failed_job)

    assert summary(events) == [
        ("status", (None, "queued", 0)),
        ("status", ("queued", "running", 1)),
        ("epoch", (1, 1)),
        ("epoch", (2, 1)),
        ("status", ("running", "queued", 1)),
        ("status", ("queued", "running", 2)),
        ("epoch", (2, 2)),  # retrained: the resume's status event said where it started
        ("status", ("running", "failed", 2)),
        ("end", "failed"),
    ]
    ids = [int(e.id) for e in events[:-1] if e.id]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert events[-1].id == f"{ids[-1]}-end"
    assert events[5].json()["resumed_from_epoch"] == 1
    assert events[6].json()["samples_per_second"] == pytest.approx(200.0)
    assert all(e.json()["job_id"] == failed_job for e in events[:-1])


@pytest.mark.parametrize("cut", [1, 3, 7])
def test_a_reconnect_with_last_event_id_loses_and_repeats_nothing(
    client: TestClient, failed_job: str, cut: int
) -> None:
    whole = stream(client, failed_job)

    rest = stream(client, failed_job, last_event_id=whole[cut - 1].id)

    assert [(e.id, e.event, e.data) for e in whole[:cut] + rest] == [(e.id, e.event, e.data) for e in whole]


def test_after_the_end_event_a_reconnect_is_told_to_stop(client: TestClient, failed_job: str) -> None:
    end = stream(client, failed_job)[-1]

    response = client.get(f"/v1/jobs/{failed_job}/events", headers=dict(SSE, **{"Last-Event-ID": end.id or ""}))

    assert response.status_code == 204


def test_a_malformed_last_event_id_is_a_400_naming_the_header(client: TestClient, failed_job: str) -> None:
    response = client.get(f"/v1/jobs/{failed_job}/events", headers=dict(SSE, **{"Last-Event-ID": "yesterday"}))

    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["error"]


def test_an_unknown_job_is_a_404_not_an_empty_stream(client: TestClient) -> None:
    response = client.get("/v1/jobs/nope/events", headers=SSE)

    assert response.status_code == 404


def test_without_the_accept_header_the_json_list_of_transitions_is_unchanged(
    client: TestClient, failed_job: str
) -> None:
    events = client.get(f"/v1/jobs/{failed_job}/events").json()

    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "queued"),
        ("queued", "running"),
        ("running", "queued"),
        ("queued", "running"),
        ("running", "failed"),
    ]
    assert JobStatus(events[-1]["to_status"]).is_final


def test_the_all_jobs_log_filters_by_the_status_an_event_left_and_by_name(
    client: TestClient, settings: Settings, failed_job: str, dataset_id: str
) -> None:
    other = client.post("/v1/jobs", json=job_request(dataset_id, name="other")).json()["id"]
    with session_scope(settings.sqlalchemy_url) as session:
        running = event_log.of_all(session, 0, status=JobStatus.RUNNING)
        named = event_log.of_all(session, 0, name="other")
        after_first = event_log.of_all(session, running[0].id)

    assert {(e.kind, e.job_id) for e in running} == {("status", failed_job), ("epoch", failed_job)}
    assert len(running) == 2 + 3  # two claims, three epochs
    assert [(e.job_id, e.data["to_status"]) for e in named] == [(other, "queued")]
    assert after_first[0].id > running[0].id and after_first[-1].job_id == other
