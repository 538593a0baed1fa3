"""TRAINYARD_LOG_JSON: `trainyard serve` and its worker write one JSON object per line, and the
lines about a job carry its id."""

import json
import re
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.e2e.conftest import free_port, wait_until_ready
from tests.factories import csv_bytes, job_request, wait_for
from tests.services import TrainyardProcess

pytestmark = pytest.mark.e2e

# Written by code outside Python's logging, which no formatter reaches (README: TRAINYARD_LOG_JSON):
# TensorFlow's native runtime at import (absl's notice, then glog-style lines such as oneDNN's),
# and the notice Celery prints on stdout when its main process begins a warm shutdown.
NATIVE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*"
    r"|worker: Warm shutdown \(MainProcess\))$"
)


def test_every_log_line_is_json_and_a_job_s_lines_carry_its_id(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", log_json=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = TrainyardProcess(["serve", "--port", str(port)], settings, tmp_path / "serve.log")
    try:
        wait_until_ready(process, f"{url}/readyz")
        dataset = httpx.post(f"{url}/v1/datasets", files={"file": ("d.csv", csv_bytes())}, timeout=30).json()
        job = httpx.post(f"{url}/v1/jobs", json=job_request(dataset["id"], fit={"epochs": 1}), timeout=30).json()

        def final() -> dict[str, object] | None:
            found = httpx.get(f"{url}/v1/jobs/{job['id']}", timeout=10).json()
            return found if found["status"] in ("succeeded", "failed", "cancelled") else None

        done = wait_for(final, 180, interval=0.5, what=f"job {job['id']} to end")
        assert done["status"] == "succeeded", done
    finally:
        process.stop()

    lines = [line for line in process.log().splitlines() if line.strip()]
    not_json = []
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            if not NATIVE.match(line):
                not_json.append(line)
    assert not_json == [], not_json[:10]
    assert all({"ts", "level", "logger", "job_id", "msg"} <= set(entry) for entry in entries)
    about_the_job = [entry for entry in entries if entry["job_id"] == job["id"]]
    # The worker's lines for this job: at least its claim and its end, from the training process.
    assert len(about_the_job) >= 2, [entry["msg"] for entry in entries][-40:]
    assert any("succeeded" in entry["msg"] for entry in about_the_job), [e["msg"] for e in about_the_job]
