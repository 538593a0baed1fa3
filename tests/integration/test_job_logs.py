"""A job's log over HTTP, written by a real worker process: a failed job can be diagnosed from
the API alone, and `follow=true` streams the lines until the job ends."""

import shutil

import httpx
import pytest

from app.config import Settings
from tests.factories import csv_bytes, job_request

pytestmark = pytest.mark.integration


def submit(client: httpx.Client, seed: int, **overrides: object) -> tuple[str, str]:
    upload = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=128, seed=seed))})
    assert upload.status_code == 201, upload.text
    dataset_id = upload.json()["id"]
    return dataset_id, str(client.post("/v1/jobs", json=job_request(dataset_id, **overrides)).json()["id"])


def test_following_a_job_log_streams_its_lines_until_it_ends(served_api: str) -> None:
    with httpx.Client(base_url=served_api, timeout=120) as client:
        _, job_id = submit(client, 2001, fit={"epochs": 3, "batch_size": 16})
        with client.stream("GET", f"/v1/jobs/{job_id}/logs", params={"follow": "true"}) as response:
            assert response.headers["content-type"].startswith("text/plain")
            text = "".join(response.iter_text())
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"

    assert "claimed, attempt 1" in text and "epoch 3/3" in text
    assert "succeeded: registered" in text  # logged after the final status was committed
    records = [line for line in text.splitlines() if line[:2] == "20"]  # not a record's 2nd line
    assert records and all(f"job={job_id}" in line for line in records)


def test_a_failed_job_says_why_in_its_log(served_api: str, production_settings: Settings) -> None:
    with httpx.Client(base_url=served_api, timeout=120) as client:
        dataset_id = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=128, seed=2002))}).json()["id"]
        shutil.rmtree(production_settings.datasets_dir / dataset_id)  # the volume lost the arrays
        job_id = client.post("/v1/jobs", json=job_request(dataset_id)).json()["id"]
        with client.stream("GET", f"/v1/jobs/{job_id}/logs", params={"follow": "true"}) as response:
            text = "".join(response.iter_text())
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "failed"

    assert "training failed" in text and "Traceback" in text and "features.npy" in text
