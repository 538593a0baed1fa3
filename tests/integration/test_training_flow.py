"""The whole service against PostgreSQL, Redis and a real worker subprocess, over HTTP."""

import itertools
import os
import shutil
import signal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import queue
from app.config import Settings
from tests.factories import csv_bytes, job_request, wait_for
from tests.services import TrainyardProcess

pytestmark = pytest.mark.integration

FINAL = {"succeeded", "failed", "cancelled"}
# Each test gets a dataset of its own: identical bytes would be deduplicated into one.
SEEDS = itertools.count(5000)  # rows no other module of this session's database uploads (uploads dedupe)


def upload(api: TestClient, rows: int = 64) -> str:
    data = csv_bytes(rows=rows, seed=next(SEEDS))
    response = api.post("/v1/datasets", files={"file": ("d.csv", data)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submit(api: TestClient, dataset_id: str, **overrides: Any) -> dict[str, Any]:
    response = api.post("/v1/jobs", json=job_request(dataset_id, **overrides))
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_until(api: TestClient, job_id: str, predicate: Any, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job = api.get(f"/v1/jobs/{job_id}").json()
        return job if predicate(job) else None

    return wait_for(check, timeout, interval=0.2, what=f"job {job_id}")


def wait_final(api: TestClient, job_id: str, timeout: float = 90) -> dict[str, Any]:
    return wait_until(api, job_id, lambda job: job["status"] in FINAL, timeout)


def test_upload_train_poll_and_predict(api: TestClient, worker: TrainyardProcess) -> None:
    job = submit(api, upload(api), name="flow", register_as="flow-model", fit={"epochs": 4, "batch_size": 16})
    done = wait_final(api, job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == {"epoch": 4, "epochs": 4}
    assert done["model"] == {"name": "flow-model", "version": 1}
    epochs = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4] and "accuracy" in epochs[0]

    status = api.get("/v1/models/flow-model").json()["model_version_status"]
    assert status[0]["version"] == "1" and status[0]["state"] == "AVAILABLE"
    serving = api.get("/v1/models/flow-model/metadata").json()["metadata"]["serving"]
    assert serving["runtime"] == "onnx" and serving["check"]["max_abs_diff"] < 1e-4
    predictions = api.post("/v1/models/flow-model:predict", json={"instances": [[0.1, 0.2, 0.3, 0.4]] * 2})
    assert predictions.status_code == 200
    rows = predictions.json()["predictions"]
    assert len(rows) == 2 and len(rows[0]) == 3 and abs(sum(rows[0]) - 1) < 1e-4
    wrong = api.post("/v1/models/flow-model:predict", json={"instances": [[1.0, 2.0]]})
    assert wrong.status_code == 400 and "shape [4]" in wrong.json()["error"]
    assert f"job={job['id']}" in worker.log()  # the worker's lines carry the job id


def test_a_second_training_run_registers_the_next_version(api: TestClient, worker: TrainyardProcess) -> None:
    dataset_id = upload(api)
    versions = []
    for _ in range(2):
        job = wait_final(api, submit(api, dataset_id, register_as="versioned")["id"])
        versions.append(job["model"]["version"])
    assert versions == [1, 2]
    assert api.put("/v1/models/versioned/labels/production", json={"version": 1}).status_code == 200
    models = {model["name"]: model for model in api.get("/v1/models").json()["items"]}
    assert models["versioned"]["labels"] == {"production": 1}
    by_label = api.post("/v1/models/versioned/labels/production:predict", json={"instances": [[0, 0, 0, 0]]})
    assert by_label.status_code == 200


def test_cancelling_a_running_job_stops_it_and_registers_nothing(api: TestClient, worker: TrainyardProcess) -> None:
    # Long enough that it cannot finish before the cancel arrives (about a lease renewal, ~1 s),
    # short enough to finish within the final wait if the cancel were ignored (so that would be
    # a `succeeded` job, not a timeout). Epoch counts, not seconds, are asserted: how many epochs
    # pass in a second depends on the machine.
    epochs = 60
    fit = {"epochs": epochs, "batch_size": 8, "performance": "off"}
    job = submit(api, upload(api, rows=1024), register_as="never", fit=fit)
    running = wait_until(api, job["id"], lambda j: j["status"] == "running" and j["progress"]["epoch"] >= 1)
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    done = wait_final(api, job["id"], timeout=180)
    assert done["status"] == "cancelled" and done["model"] is None
    assert running["progress"]["epoch"] <= done["progress"]["epoch"] < epochs
    recorded = [e["epoch"] for e in api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]]
    assert recorded == list(range(1, done["progress"]["epoch"] + 1))
    assert api.get("/v1/models/never").status_code == 404


def test_a_failure_in_the_worker_ends_failed_with_a_readable_error(
    api: TestClient, worker: TrainyardProcess, production_settings: Settings
) -> None:
    dataset_id = upload(api)
    # The stored arrays vanish between submit and training (a lost volume, say).
    shutil.rmtree(production_settings.datasets_dir / dataset_id)
    done = wait_final(api, submit(api, dataset_id)["id"])
    assert done["status"] == "failed"
    assert "No such file or directory" in done["error"] and "features.npy" in done["error"]


def test_a_duplicate_delivery_does_nothing(
    api: TestClient, worker: TrainyardProcess, production_settings: Settings
) -> None:
    job = submit(api, upload(api), register_as="dup")
    skipped = f"job {job['id']}: delivery skipped in the main process"
    queue.enqueue(production_settings, job["id"])  # the same id delivered twice
    done = wait_final(api, job["id"])
    queue.enqueue(production_settings, job["id"])  # and once more after it ended
    # Both extra deliveries of THIS job were answered by the worker's main process (no child);
    # only once the second was can nothing more happen to the job.
    wait_for(lambda: worker.log().count(skipped) >= 2, 60, interval=0.2, what=f"two {skipped!r} lines")
    assert worker.log().count(skipped) == 2
    assert done["status"] == "succeeded" and done["attempt"] == 1
    assert api.get(f"/v1/jobs/{job['id']}").json()["attempt"] == 1
    assert [v["version"] for v in api.get("/v1/models/dup").json()["model_version_status"]] == ["1"]
    events = api.get(f"/v1/jobs/{job['id']}/events").json()
    assert [e["to_status"] for e in events] == ["queued", "running", "succeeded"]


def test_a_killed_worker_process_loses_no_job(api: TestClient, worker: TrainyardProcess) -> None:
    job = submit(api, upload(api, rows=2048), register_as="survivor", fit={"epochs": 30, "batch_size": 8})
    running = wait_until(api, job["id"], lambda j: j["status"] == "running" and j["progress"]["epoch"] >= 1)
    child_pid = int(running["worker"].rsplit(":", 1)[1])
    os.kill(child_pid, signal.SIGKILL)  # the training process dies mid-job (OOM killer, say)
    done = wait_final(api, job["id"], timeout=180)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempt"] == 2
    events = api.get(f"/v1/jobs/{job['id']}/events").json()
    # Either the sweep saw the lease expire first (running → queued → running), or Celery's
    # redelivery reached a fresh child after expiry and reclaimed it directly (running → running).
    assert [e["to_status"] for e in events] in (
        ["queued", "running", "queued", "running", "succeeded"],
        ["queued", "running", "running", "succeeded"],
    )
    # Whichever was heard first says why the attempt ended: the worker's report of the child's
    # death (how it died), or the sweep's finding that its lease expired.
    released = [e["detail"] or "" for e in events if e["from_status"] == "running" and e["to_status"] != "succeeded"]
    assert len(released) == 1
    assert (
        "signal 9 (SIGKILL)" in released[0]
        or "stopped renewing its lease" in released[0]
        or ("after its lease expired" in released[0])
    ), released
