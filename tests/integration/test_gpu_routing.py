"""GPU routing and device pinning with a real worker told its device list (no GPU needed).

The session's CPU worker consumes `training`; here a second worker consumes `training.gpu` only,
with TRAINYARD_WORKER_DEVICES=0,1 and two children: each child is pinned to one device.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db.session import session_scope
from app.models import Worker
from tests.factories import csv_bytes, job_request, wait_for
from tests.services import TrainyardProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gpu_worker(production_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainyardProcess]:
    settings = production_settings.model_copy(update={"worker_devices": "0,1"})
    log_path = Path(tmp_path_factory.mktemp("logs")) / "gpu-worker.log"
    process = TrainyardProcess(
        ["worker", "--queues", "training.gpu", "--concurrency", "2", "--name", "gpu-node@test"], settings, log_path
    )
    try:
        process.wait_for_log("child ready", timeout=120)
        wait_for(lambda: _worker_row(production_settings) is not None, timeout=30, what="the GPU worker's row")
        yield process
    finally:
        process.stop()


def _worker_row(settings: Settings) -> dict[str, Any] | None:
    with session_scope(settings.sqlalchemy_url) as session:
        row = session.get(Worker, "gpu-node@test")
        return None if row is None else {"devices": row.devices, "per_job": row.devices_per_job}


def _upload(api: TestClient) -> str:
    response = api.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=64, seed=4242))})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def _finished(api: TestClient, job_id: str) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(final, timeout=180, interval=0.5, what=f"job {job_id} to finish")


def test_a_gpu_job_with_no_gpu_worker_alive_says_what_it_waits_for(api: TestClient) -> None:
    job = api.post("/v1/jobs", json=job_request(_upload(api), name="no-gpu-yet", gpu=True)).json()

    assert job["status"] == "queued" and job["queue"] == "training.gpu"
    assert job["waiting_for"] == "waiting for a worker on training.gpu"
    assert api.get(f"/v1/jobs/{job['id']}").json()["waiting_for"] == "waiting for a worker on training.gpu"
    api.post(f"/v1/jobs/{job['id']}/cancel")  # the GPU worker of the next tests must not take it


def test_a_worker_with_no_device_list_advertises_what_its_backend_sees(
    api: TestClient, production_settings: Settings
) -> None:
    def cpu_worker_devices() -> tuple[list[str] | None, int | None] | None:
        with session_scope(production_settings.sqlalchemy_url) as session:
            rows = session.scalars(select(Worker).where(Worker.queues == "training")).all()
            seen = [(row.devices, row.devices_per_job) for row in rows if row.devices is not None]
        return seen[0] if seen else None

    # The session's CPU worker was told no devices and has no NVML: its child lists the backend's.
    assert wait_for(cpu_worker_devices, timeout=60, interval=0.5, what="the CPU worker's devices") == (["cpu:0"], 1)


def test_gpu_jobs_run_on_the_gpu_worker_each_pinned_to_its_own_device(
    api: TestClient, gpu_worker: TrainyardProcess, production_settings: Settings
) -> None:
    assert _worker_row(production_settings) == {"devices": ["0", "1"], "per_job": 1}
    dataset = _upload(api)

    submitted = [api.post("/v1/jobs", json=job_request(dataset, name=f"gpu-{i}", gpu=True)).json() for i in range(2)]
    finished = [_finished(api, job["id"]) for job in submitted]

    assert [job["status"] for job in finished] == ["succeeded", "succeeded"], [job["error"] for job in finished]
    assert {job["resources"]["visible_devices"] for job in finished} == {"0", "1"}
    for job in finished:
        assert job["waiting_for"] is None and job["queue"] == "training.gpu"
        assert job["resources"]["gpus"] == 1 and job["resources"]["devices"] == ["cpu:0"]
        # This machine has no GPU: the job says it trained on the CPU instead, not silently.
        assert job["resources"]["warning"].startswith("no GPU visible to this worker")


def test_a_job_asking_for_more_devices_than_any_worker_gives_one_job_is_refused(
    api: TestClient, gpu_worker: TrainyardProcess
) -> None:
    response = api.post("/v1/jobs", json=job_request(_upload(api), name="too-big", resources={"gpus": 2}))

    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("resources.gpus: the job asks for 2 devices")
