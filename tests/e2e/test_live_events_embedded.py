"""The live event stream on the embedded default (SQLite, `serve`'s own worker process): the
stream polls the table, and still gets every transition and epoch in order, then `end`; the
job's log has the built-in worker's lines."""

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.factories import csv_bytes, job_request
from tests.sse import read_events

pytestmark = pytest.mark.e2e


def test_an_embedded_job_streams_every_epoch_and_transition_then_ends(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        upload = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=256, seed=31))})
        request = job_request(upload.json()["id"], fit={"epochs": 5, "batch_size": 8})
        job_id = client.post("/v1/jobs", json=request).json()["id"]
        with client.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}) as response:
            events = list(read_events(response.iter_lines()))  # the server closes after `end`
        log = client.get(f"/v1/jobs/{job_id}/logs", params={"follow": "true"}).text

    summary = [
        (e.event, e.json()["to_status"] if e.event == "status" else e.json().get("epoch", e.json().get("status")))
        for e in events
    ]
    assert summary == [
        ("status", "queued"),
        ("status", "running"),
        *[("epoch", n) for n in range(1, 6)],
        ("status", "succeeded"),
        ("end", "succeeded"),
    ]
    assert "epoch 5/5" in log and "succeeded: registered" in log  # serve's own worker logs the job too
