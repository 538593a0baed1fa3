"""A small study on the embedded service, over HTTP: every trial a job, the best registered."""

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.factories import csv_bytes, wait_for
from tests.studies import study_request

pytestmark = pytest.mark.e2e


def test_a_small_study_runs_its_trials_as_jobs_and_registers_the_best(server: Server) -> None:
    upload = httpx.post(f"{server.url}/v1/datasets", files={"file": ("s.csv", csv_bytes(rows=256, seed=4242))})
    request = study_request(upload.json()["id"], name="embedded-study", register_as="embedded-best", max_trials=3)
    created = httpx.post(f"{server.url}/v1/studies", json=request, timeout=60)
    assert created.status_code == 202, created.text
    study_id = created.json()["id"]

    def ended() -> dict | None:
        study = httpx.get(f"{server.url}/v1/studies/{study_id}").json()
        return study if study["status"] != "running" else None

    study = wait_for(ended, timeout=240, interval=0.5, what="the study to end")
    assert study["status"] == "succeeded", study
    trials = study["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert all(t["status"] == "succeeded" and t["value"] is not None for t in trials)
    jobs = httpx.get(f"{server.url}/v1/jobs", params={"study_id": study_id}).json()["items"]
    assert sorted(j["id"] for j in jobs) == sorted(t["job_id"] for t in trials)
    best = study["best_trial"]
    assert best["value"] == max(t["value"] for t in trials)
    assert study["model"]["name"] == "embedded-best"
    version = httpx.get(f"{server.url}/v1/models/embedded-best").json()
    assert version["model_version_status"][0]["state"] == "AVAILABLE"
    predict = httpx.post(f"{server.url}/v1/models/embedded-best:predict", json={"instances": [[0.1, 0.2, 0.3, 0.4]]})
    assert predict.status_code == 200, predict.text
    plot = httpx.get(f"{server.url}/v1/studies/{study_id}/plot.svg")
    assert plot.headers["content-type"].startswith("image/svg+xml") and b"<svg" in plot.content
