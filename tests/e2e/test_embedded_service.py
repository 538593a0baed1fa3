"""The embedded service's guarantees, over real HTTP: limits, cleanup, recovery."""

import os
import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import UPLOAD_LIMIT, Server
from tests.factories import csv_bytes, job_request, wait_for

pytestmark = pytest.mark.e2e


def test_a_chunked_upload_over_the_limit_is_refused_while_streaming(server: Server) -> None:
    def body() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
        for _ in range(UPLOAD_LIMIT // 65536 * 4):
            yield b"1," * 32768

    response = httpx.post(
        f"{server.url}/v1/datasets",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=b"},
        timeout=30,
    )
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert list((server.settings.datasets_dir / ".incoming").iterdir()) == []
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_job_survives_its_embedded_worker_being_killed(server: Server) -> None:
    upload = httpx.post(f"{server.url}/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=2048))})
    request = job_request(upload.json()["id"], register_as="embedded-survivor", fit={"epochs": 40, "batch_size": 8})
    job = httpx.post(f"{server.url}/v1/jobs", json=request).json()

    def running() -> dict | None:
        current = httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()
        return current if current["status"] == "running" and current["progress"]["epoch"] >= 1 else None

    worker = wait_for(running, timeout=60, what="the job to be running")["worker"]
    os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)

    def final() -> dict | None:
        current = httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()
        return current if current["status"] in ("succeeded", "failed", "cancelled") else None

    # The lease (30 s by default) must expire before the sweep hands the job out again.
    done = wait_for(final, timeout=240, interval=0.5, what="the job to finish")
    assert done["status"] == "succeeded" and done["attempt"] == 2
