"""/metrics of an API process while a separate worker process trains (PostgreSQL + Redis)."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import csv_bytes, job_request
from tests.sse import read_events

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: httpx.Client) -> Samples:
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_show_a_running_job_its_worker_and_its_epochs(served_api: str) -> None:
    with httpx.Client(base_url=served_api, timeout=120) as client:
        before = scrape(client)
        upload = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=512, seed=77))})
        request = job_request(upload.json()["id"], name="metered", fit={"epochs": 500, "batch_size": 8})
        job_id = client.post("/v1/jobs", json=request).json()["id"]
        with client.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}) as events:
            lines = events.iter_lines()
            for event in read_events(lines):
                if event.event == "epoch" and event.json()["epoch"] == 2:
                    break
            running = scrape(client)
            assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
            assert [e.json()["status"] for e in read_events(lines) if e.event == "end"] == ["cancelled"]
        ended = scrape(client)

    assert get(running, "trainyard_jobs", status="running") == 1
    assert get(running, "trainyard_training_samples_per_second", job=job_id) > 0
    assert get(running, "trainyard_workers", queue="training") >= 1
    epochs = "trainyard_epoch_duration_seconds_count"
    assert get(running, epochs) - get(before, epochs) >= 2
    submits = "trainyard_submit_requests_total"
    assert get(running, submits, outcome="accepted") - get(before, submits, outcome="accepted") == 1

    assert get(ended, "trainyard_jobs", status="running") == 0
    assert get(ended, "trainyard_training_samples_per_second", job=job_id) == 0
    cancelled = "trainyard_job_duration_seconds_count"
    assert get(ended, cancelled, status="cancelled") - get(before, cancelled, status="cancelled") == 1
    assert ("trainyard_model_cache_models", ()) in ended  # the serving series are still there
