"""Soak: many small jobs through two workers on PostgreSQL + Redis while a chaos loop kills.

Runs the same batch of jobs twice in one run, on the same services: once undisturbed (the
baseline), once while a chaos loop, every 15-30 s, either SIGKILLs the child process training a
random running job or sends SIGTERM to a random worker (which hands its job back and exits; it is
then started again). Reports, for the chaos phase:

  * jobs lost (not `succeeded` at the end; must be 0),
  * jobs with more than one `succeeded` transition or model version (must be 0),
  * epochs trained again after each interruption (the epoch the attempt had reached minus the
    epoch the next attempt resumed from; expected ≤ 1),
  * throughput (jobs per minute) against the undisturbed phase,

and appends them, with date, machine and versions, to bench/RESULTS.md.

    .venv/bin/python bench/soak.py [--jobs 100] [--epochs 6] [--rows 3000]

Needs PostgreSQL on 127.0.0.1:5432 (trust auth) and `redis-server` on the PATH (it starts its own
on a free port).
"""

import argparse
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import machine  # bench/machine.py (scripts run from bench/, so it is importable)
import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def services(home: Path) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database and a redis-server of our own; yields the environment."""
    database = f"trainyard_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env |= {
        "TRAINYARD_HOME": str(home),
        "TRAINYARD_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
        "TRAINYARD_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TRAINYARD_JOB_LEASE_S": "6",
        "TRAINYARD_HEARTBEAT_S": "0.5",
        "TRAINYARD_SWEEP_INTERVAL_S": "1",
        "TRAINYARD_LOST_MESSAGE_AFTER_S": "10",
        "TRAINYARD_SHUTDOWN_GRACE_S": "10",
        "TRAINYARD_MAX_ATTEMPTS": "10",
        "TRAINYARD_ACCESS_LOG": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    try:
        yield env
    finally:
        redis.terminate()
        redis.wait()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._handle = log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT, stdout=self._handle, stderr=subprocess.STDOUT
        )

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Interruption:
    kind: str  # "SIGKILL child" or "SIGTERM worker"
    job_id: str
    epoch_reached: int
    at: float


@dataclass
class Phase:
    name: str
    job_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interruptions: list[Interruption] = field(default_factory=list)


def upload(client: httpx.Client, rows: int) -> str:
    rng = np.random.default_rng(0)
    x = rng.random((rows, 8), dtype=np.float32)
    y = (x[:, 0] + x[:, 1] > 1).astype(int) + (x[:, 2] > 0.5).astype(int)
    lines = [",".join(f"f{i}" for i in range(8)) + ",label"]
    lines += [",".join(f"{v:.5f}" for v in row) + f",{label}" for row, label in zip(x, y, strict=True)]
    response = client.post("/v1/datasets", files={"file": ("soak.csv", "\n".join(lines).encode())})
    response.raise_for_status()
    return str(response.json()["id"])


def submit(client: httpx.Client, dataset_id: str, name: str, epochs: int) -> str:
    body = {
        "name": name,
        "dataset_id": dataset_id,
        "model": {
            "layers": [
                {"type": "Dense", "units": 32, "activation": "relu"},
                {"type": "Dense", "units": 3, "activation": "softmax"},
            ]
        },
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": epochs, "batch_size": 16, "seed": 1},
        "register_as": name,
    }
    response = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": name})
    response.raise_for_status()
    return str(response.json()["id"])


def wait_all_final(client: httpx.Client, job_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(job_ids)
    while pending and time.monotonic() < deadline:
        page = client.get("/v1/jobs", params={"limit": 500}).json()["items"]
        pending -= {job["id"] for job in page if job["status"] in FINAL}
        time.sleep(1)
    if pending:
        print(f"  {len(pending)} jobs still not final after {timeout:.0f} s", flush=True)


class Chaos(threading.Thread):
    """Every 15-30 s: SIGKILL the child training a random running job, or SIGTERM a worker."""

    def __init__(self, client: httpx.Client, workers: list[Process], start_worker: Any, phase: Phase) -> None:
        super().__init__(daemon=True)
        self._client, self._workers, self._start_worker, self._phase = client, workers, start_worker, phase
        self.done = threading.Event()
        self._rng = random.Random(7)

    def run(self) -> None:
        while not self.done.wait(self._rng.uniform(15, 30)):
            running = [
                j for j in self._client.get("/v1/jobs", params={"status": "running"}).json()["items"] if j["worker"]
            ]
            if not running:
                continue
            job = self._rng.choice(running)
            if self._rng.random() < 0.5:
                os.kill(int(job["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
                kind = "SIGKILL child"
            else:
                index = self._worker_running(job["worker"])
                self._workers[index].popen.send_signal(signal.SIGTERM)
                self._workers[index].popen.wait(60)
                self._workers[index] = self._start_worker(index)
                kind = "SIGTERM worker"
            self._phase.interruptions.append(Interruption(kind, job["id"], job["progress"]["epoch"], time.time()))
            print(f"  chaos: {kind} (job {job['id']} at epoch {job['progress']['epoch']})", flush=True)

    def _worker_running(self, worker: str) -> int:
        child = int(worker.rsplit(":", 1)[1])
        for index, process in enumerate(self._workers):
            if Path(f"/proc/{child}/stat").exists():
                parent = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent == process.popen.pid:
                    return index
        return self._rng.randrange(len(self._workers))


def run_phase(client: httpx.Client, phase: Phase, dataset_id: str, jobs: int, epochs: int, chaos: Chaos | None) -> None:
    started = time.monotonic()
    if chaos is not None:
        chaos.start()
    phase.job_ids = [submit(client, dataset_id, f"{phase.name}-{i}", epochs) for i in range(jobs)]
    wait_all_final(client, phase.job_ids, timeout=jobs * 60)
    phase.seconds = time.monotonic() - started
    if chaos is not None:
        chaos.done.set()
        chaos.join(70)


RESUMED = re.compile(r"resumed from epoch (\d+)")


def audit(client: httpx.Client, phase: Phase) -> dict[str, Any]:
    lost, duplicated, epochs_wrong, retrained = [], [], [], []
    for job_id in phase.job_ids:
        job = client.get(f"/v1/jobs/{job_id}").json()
        events = client.get(f"/v1/jobs/{job_id}/events").json()
        history = client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
        versions = client.get(f"/v1/models/{job['register_as']}").json().get("model_version_status", [])
        if job["status"] != "succeeded":
            lost.append(job_id)
        if sum(e["to_status"] == "succeeded" for e in events) > 1 or len(versions) > 1:
            duplicated.append(job_id)
        if [e["epoch"] for e in history] != list(range(1, job["progress"]["epochs"] + 1)):
            epochs_wrong.append(job_id)
        for interruption in (i for i in phase.interruptions if i.job_id == job_id):
            later = [e for e in events if e["at"] and datetime.fromisoformat(e["at"]).timestamp() > interruption.at]
            claims = [RESUMED.search(e["detail"] or "") for e in later if e["to_status"] == "running"]
            resumed_from = int(claims[0].group(1)) if claims and claims[0] else 0
            retrained.append(max(0, interruption.epoch_reached - resumed_from))
    return {"lost": lost, "duplicated": duplicated, "epochs_wrong": epochs_wrong, "retrained": retrained}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rows", type=int, default=3000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="trainyard-soak-"))
    logs = home / "logs"
    logs.mkdir()
    with services(home / "data") as env:
        port = free_port()
        api = Process(["serve", "--port", str(port)], env | {"TRAINYARD_EMBEDDED_WORKER": "false"}, logs / "serve.log")
        counter = itertools.count()

        def start_worker(index: int) -> Process:
            name = f"soak{index}-{next(counter)}@{socket.gethostname()}"
            return Process(["worker", "--concurrency", "1", "--name", name], env, logs / f"worker{index}.log")

        workers = [start_worker(0), start_worker(1)]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        try:
            for _ in range(120):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            dataset_id = upload(client, args.rows)
            baseline = Phase("calm")
            print(f"baseline: {args.jobs} jobs, no chaos", flush=True)
            run_phase(client, baseline, dataset_id, args.jobs, args.epochs, None)
            chaotic = Phase("chaos")
            print(f"chaos: {args.jobs} jobs, a kill every 15-30 s", flush=True)
            run_phase(
                client, chaotic, dataset_id, args.jobs, args.epochs, Chaos(client, workers, start_worker, chaotic)
            )
            report(args, baseline, audit(client, baseline), chaotic, audit(client, chaotic))
        finally:
            for process in [api, *workers]:
                process.stop()
    print(f"logs in {logs}")


def report(
    args: argparse.Namespace, calm: Phase, calm_audit: dict[str, Any], chaos: Phase, audit_: dict[str, Any]
) -> None:
    calm_rate = len(calm.job_ids) / calm.seconds * 60
    chaos_rate = len(chaos.job_ids) / chaos.seconds * 60
    kinds = {kind: sum(i.kind == kind for i in chaos.interruptions) for kind in ("SIGKILL child", "SIGTERM worker")}
    retrained = audit_["retrained"]
    lines = [
        f"## soak — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine.describe('celery', 'sqlalchemy', 'redis')}; PostgreSQL + own redis-server, 2 workers "
        f"(concurrency 1), `trainyard serve` API. {args.jobs} jobs x {args.epochs} epochs ({args.rows} rows, batch 16) "
        "per phase.",
        "",
        "| phase | jobs | wall (s) | jobs/min | lost | duplicated succeeded/version | history not 1..N once |",
        "|---|---|---|---|---|---|---|",
        f"| calm | {len(calm.job_ids)} | {calm.seconds:.0f} | {calm_rate:.1f} | {len(calm_audit['lost'])} | "
        f"{len(calm_audit['duplicated'])} | {len(calm_audit['epochs_wrong'])} |",
        f"| chaos | {len(chaos.job_ids)} | {chaos.seconds:.0f} | {chaos_rate:.1f} | {len(audit_['lost'])} | "
        f"{len(audit_['duplicated'])} | {len(audit_['epochs_wrong'])} |",
        "",
        f"Interruptions: {kinds['SIGKILL child']} SIGKILLs of a training child, "
        f"{kinds['SIGTERM worker']} SIGTERMs of a worker. "
        f"Epochs trained again per interruption: {json.dumps(retrained)} "
        f"(max {max(retrained, default=0)}, mean {np.mean(retrained) if retrained else 0:.2f}). "
        f"Throughput under chaos: {chaos_rate / calm_rate:.2f}x the calm phase.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with RESULTS.open("a") as handle:
        handle.write("\n" + text)


if __name__ == "__main__":
    main()
