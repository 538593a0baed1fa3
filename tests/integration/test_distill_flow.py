"""A distillation job on PostgreSQL + Redis with a real `trainyard worker`: the worker loads the
registered teacher and trains the student; it registers, serves, and its epochs carry gradient health."""

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import csv_bytes, job_request

pytestmark = pytest.mark.integration


def finished(api: TestClient, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled", "timed_out"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_a_worker_distils_a_registered_teacher_into_a_student_that_serves(api: TestClient) -> None:
    dataset = api.post("/v1/datasets", files={"file": ("distill.csv", csv_bytes(rows=240, seed=41))}).json()["id"]
    fit = {"epochs": 3, "batch_size": 16}
    teacher = api.post("/v1/jobs", json=job_request(dataset, name="distill-teacher-pg", fit=fit))
    assert teacher.status_code == 202, teacher.text
    taught = finished(api, teacher.json()["id"])
    assert taught["status"] == "succeeded", taught["error"]

    body = job_request(dataset, name="distill-student-pg", fit=fit)
    body["model"]["layers"][0]["units"] = 2  # a quarter of the teacher's hidden units, and less
    body["distill"] = {"teacher": {"model": "distill-teacher-pg", "version": 1}, "temperature": 2.0, "alpha": 0.5}
    student = api.post("/v1/jobs", json=body)
    assert student.status_code == 202, student.text
    done = finished(api, student.json()["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["model"] == {"name": "distill-student-pg", "version": 1}

    epochs = api.get(f"/v1/jobs/{done['id']}/metrics").json()["epochs"]
    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    assert all(row["grad_norm"] > 0 and row["grad_nonfinite"] == 0.0 for row in epochs)
    predicted = api.post("/v1/models/distill-student-pg:predict", json={"instances": [[0.1, 0.2, 0.3, 0.4]]})
    assert predicted.status_code == 200, predicted.text
    assert len(predicted.json()["predictions"][0]) == 3
