"""Live job events over HTTP with the API, the worker and the client in three processes, on
PostgreSQL (LISTEN/NOTIFY) and Redis: every epoch and transition arrives, in order, and a
reconnect with Last-Event-ID loses and repeats nothing."""

import itertools
import threading
from typing import Any

import httpx
import pytest

from tests.factories import csv_bytes, job_request
from tests.sse import Event, read_events

pytestmark = pytest.mark.integration

SSE = {"Accept": "text/event-stream"}
EPOCHS = 8
SEEDS = itertools.count(1000)


def start_job(client: httpx.Client, name: str) -> str:
    upload = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=512, seed=next(SEEDS)))})
    assert upload.status_code == 201, upload.text
    request = job_request(upload.json()["id"], name=name, fit={"epochs": EPOCHS, "batch_size": 8})
    response = client.post("/v1/jobs", json=request)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def read(client: httpx.Client, path: str, until: Any, last_event_id: str | None = None) -> list[Event]:
    """Events of `path` until `until(event)` holds (inclusive), then the connection is closed."""
    headers = dict(SSE, **({"Last-Event-ID": last_event_id} if last_event_id else {}))
    got: list[Event] = []
    with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["x-accel-buffering"] == "no"
        for event in read_events(response.iter_lines()):
            got.append(event)
            if until(event):
                break
    return got


def key(events: list[Event]) -> list[tuple[str | None, str, str]]:
    return [(e.id, e.event, e.data) for e in events]


def test_a_client_streams_a_real_job_and_resumes_after_a_disconnect(served_api: str) -> None:
    with httpx.Client(base_url=served_api, timeout=120) as client:
        job_id = start_job(client, "live-stream")

        # Cut the connection after the third epoch arrived, then reconnect where it left off.
        first = read(client, f"/v1/jobs/{job_id}/events", lambda e: e.event == "epoch" and e.json()["epoch"] == 3)
        rest = read(client, f"/v1/jobs/{job_id}/events", lambda e: e.event == "end", last_event_id=first[-1].id)
        replay = read(client, f"/v1/jobs/{job_id}/events", lambda e: e.event == "end")

    assert key(first + rest) == key(replay)  # nothing lost, nothing twice
    statuses = [(e.json()["from_status"], e.json()["to_status"]) for e in replay if e.event == "status"]
    assert statuses == [(None, "queued"), ("queued", "running"), ("running", "succeeded")]
    assert [e.json()["epoch"] for e in replay if e.event == "epoch"] == list(range(1, EPOCHS + 1))
    kinds = [e.event for e in replay]
    assert kinds.index("epoch") > 1 and kinds[-2:] == ["status", "end"]  # epochs between the transitions
    assert replay[-1].json()["status"] == "succeeded" and replay[-1].json()["model"] is not None
    assert all(e.json()["samples_per_second"] > 0 for e in replay if e.event == "epoch")


def test_the_all_jobs_stream_carries_job_ids_and_filters_by_name(served_api: str) -> None:
    seen: list[Event] = []
    listening = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=served_api, timeout=120) as client,
            client.stream("GET", "/v1/events", params={"name": "watched"}, headers=SSE) as response,
        ):
            listening.set()
            for event in read_events(response.iter_lines()):
                seen.append(event)
                if event.event == "status" and event.json()["to_status"] == "succeeded":
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert listening.wait(30)
    with httpx.Client(base_url=served_api, timeout=120) as client:
        start_job(client, "unwatched")
        job_id = start_job(client, "watched")
        listener.join(timeout=120)
        assert not listener.is_alive(), f"the stream stopped short: {[e.event for e in seen]}"
        replay = read(client, f"/v1/jobs/{job_id}/events", lambda e: e.event == "end")

    assert {e.json()["job_id"] for e in seen} == {job_id}
    assert key(seen) == key(replay[:-1])  # the same events, ids and order as the job's own stream
