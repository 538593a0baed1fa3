"""Over HTTP against an embedded `trainyard serve`: `fit.performance` auto trains the same model
as off (same epochs, losses within float noise), shows what it chose and why on the job, and
takes each choice back as an override."""

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.factories import csv_bytes, job_request, wait_for

pytestmark = pytest.mark.e2e

# 400 rows in batches of 16: 25 batches an epoch, enough for auto to time its first steps.
ROWS, EPOCHS = 400, 4
# Float noise: XLA fuses the step's operations and may order the sums differently.
LOSS_TOLERANCE = 1e-3


def run_job(server: Server, dataset_id: str, **fit: Any) -> dict[str, Any]:
    body = job_request(dataset_id, fit={"epochs": EPOCHS, "batch_size": 16, "seed": 11, **fit})
    response = httpx.post(f"{server.url}/v1/jobs", json=body, timeout=60)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    def final() -> dict[str, Any] | None:
        job = httpx.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(final, timeout=300, interval=0.5, what=f"job {job_id} to finish")
    assert job["status"] == "succeeded", job["error"]
    job["epochs"] = httpx.get(f"{server.url}/v1/jobs/{job_id}/metrics", timeout=10).json()["epochs"]
    return dict(job)


def test_auto_reaches_the_metrics_of_off_and_says_what_it_chose(server: Server) -> None:
    upload = httpx.post(f"{server.url}/v1/datasets", files={"file": ("p.csv", csv_bytes(rows=ROWS))}, timeout=60)
    dataset_id = upload.json()["id"]

    # class_weight too: the first steps auto times must be trained exactly like the rest.
    weights = {"0": 1.0, "1": 2.0, "2": 0.5}
    off = run_job(server, dataset_id, performance="off", class_weight=weights)
    auto = run_job(server, dataset_id, class_weight=weights)  # auto is the default

    assert [e["epoch"] for e in auto["epochs"]] == [e["epoch"] for e in off["epochs"]] == [1, 2, 3, 4]
    for ours, theirs in zip(auto["epochs"], off["epochs"], strict=True):  # every epoch, the probed first too
        assert ours["loss"] == pytest.approx(theirs["loss"], abs=LOSS_TOLERANCE)
        assert ours["accuracy"] == pytest.approx(theirs["accuracy"], abs=1 / ROWS + 1e-6)

    chose = auto["performance"]
    assert chose["mode"] == "auto" and chose["backend"] == "tensorflow"
    assert chose["steps_per_execution"]["value"] >= 1
    assert "median step" in chose["steps_per_execution"]["reason"]  # sized from timed steps
    assert chose["jit_compile"]["value"] is True
    assert chose["dtype_policy"]["value"] == "float32"  # a CPU: no bfloat16
    # A CPU: the rows stay in its memory, and each step group is one compiled loop over them.
    assert chose["data_placement"]["value"] == "device"
    assert chose["fused_steps"]["value"] is True and "one compiled loop" in chose["fused_steps"]["reason"]
    keys = ("steps_per_execution", "jit_compile", "dtype_policy", "data_placement", "fused_steps")
    assert all(chose[k]["reason"] for k in keys)
    assert off["performance"]["steps_per_execution"] == {"value": 1, "reason": "performance off: Keras's default"}
    assert off["performance"]["jit_compile"]["value"] == "auto"
    assert off["performance"]["data_placement"]["value"] == "host"
    assert off["performance"]["fused_steps"] == {"value": False, "reason": "performance off: Keras's own step loop"}

    # Each choice given back in fit is used as given.
    pinned = run_job(
        server,
        dataset_id,
        class_weight=weights,
        steps_per_execution=5,
        jit_compile=False,
        data_placement="pipeline",
        dtype_policy="float32",
        fused_steps=False,
    )
    given = (("steps_per_execution", 5), ("jit_compile", False), ("data_placement", "pipeline"), ("fused_steps", False))
    for key, value in given:
        assert pinned["performance"][key] == {"value": value, "reason": "given in fit"}
    assert pinned["epochs"][-1]["loss"] == pytest.approx(off["epochs"][-1]["loss"], abs=LOSS_TOLERANCE)


def test_a_performance_that_is_not_auto_or_off_is_refused_naming_the_field(server: Server) -> None:
    body = job_request("any", fit={"performance": "fast", "steps_per_execution": 0})
    response = httpx.post(f"{server.url}/v1/jobs", json=body, timeout=60)
    assert response.status_code == 422
    fields = {".".join(str(p) for p in error["loc"]) for error in response.json()["detail"]}
    assert any(f.endswith("fit.performance") for f in fields), fields
    assert any(f.endswith("fit.steps_per_execution") for f in fields), fields
