"""`serve`'s built-in worker over real HTTP: restarted when it dies, /readyz in step, FIFO.

A server of its own: these tests kill its worker, which the shared one must not see."""

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.e2e.conftest import Server, free_port, wait_until_ready
from tests.factories import csv_bytes, job_request, wait_for
from tests.services import TrainyardProcess

pytestmark = pytest.mark.e2e
FINAL = ("succeeded", "failed", "cancelled", "timed_out")


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = Path(tmp_path_factory.mktemp("supervised-home"))
    settings = Settings(home=home, access_log=False)
    port = free_port()
    process = TrainyardProcess(["serve", "--port", str(port)], settings, home.parent / "supervised-serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/readyz")  # 200: the built-in worker consumes
        yield Server(url=url, settings=settings, process=process)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def dataset_id(own_server: Server) -> str:
    upload = httpx.post(f"{own_server.url}/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=32))})
    return str(upload.json()["id"])


def readyz(server: Server) -> httpx.Response:
    return httpx.get(f"{server.url}/readyz", timeout=10)


def submit(server: Server, dataset_id: str, **overrides: Any) -> str:
    request = job_request(dataset_id, fit={"epochs": 1, "batch_size": 32}, **overrides)
    response = httpx.post(f"{server.url}/v1/jobs", json=request, timeout=30)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def finished(server: Server, job_id: str, timeout: float) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        job: dict[str, Any] = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
        return job if job["status"] in FINAL else None

    return wait_for(final, timeout=timeout, interval=0.5, what=f"job {job_id} to finish")


def test_a_killed_worker_is_restarted_and_readyz_says_so_meanwhile(own_server: Server, dataset_id: str) -> None:
    killed = readyz(own_server).json()["embedded_worker"]["pid"]
    os.kill(killed, signal.SIGKILL)
    job_id = submit(own_server, dataset_id, register_as="after-restart")

    unready = wait_for(
        lambda: readyz(own_server) if readyz(own_server).status_code == 503 else None,
        timeout=30,
        interval=0.05,
        what="/readyz to answer 503",
    ).json()
    assert "no live worker consumes queue 'training' (1 job queued), because the embedded worker" in unready["error"]
    own_server.process.wait_for_log(f"embedded worker (pid {killed}) was killed by SIGKILL; restarting it", 30)

    ready = wait_for(
        lambda: readyz(own_server) if readyz(own_server).status_code == 200 else None,
        timeout=120,
        interval=0.2,
        what="/readyz to answer 200 again",
    ).json()
    assert ready["embedded_worker"]["pid"] != killed and ready["embedded_worker"]["restarts"] == 1
    assert finished(own_server, job_id, timeout=120)["status"] == "succeeded"
    assert finished(own_server, submit(own_server, dataset_id), timeout=120)["status"] == "succeeded"


@pytest.mark.timeout(600)  # each job gets a fresh child that imports Keras: 10-40 s a job here
def test_jobs_start_in_the_order_they_were_submitted(own_server: Server, dataset_id: str) -> None:
    # Both queues, in runs: a worker taking its queues in turn starts job 3 (GPU) before job 2.
    # Six jobs, not thirty: the transport's own test sends 200 messages.
    gpu_flags = [False, False, True, True, False, False]
    job_ids = [submit(own_server, dataset_id, gpu=gpu) for gpu in gpu_flags]
    jobs = [finished(own_server, job_id, timeout=300) for job_id in job_ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * len(jobs)
    by_start = sorted(jobs, key=lambda job: job["started_at"])
    assert [job["id"] for job in by_start] == job_ids
