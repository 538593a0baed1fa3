"""How much does running a job through trainyard cost, against the same fit in plain Keras?

Measures, in one run on this machine:
  * fit throughput (samples/s over the epochs after the first) of the seed MLP
    (Dense 64 relu → Dense 64 relu → Dense 10 softmax, 100 features, batch 32):
    (a) a plain Keras script in this process, (b) the same model as a job through
    `trainyard serve` in embedded mode, and (c) through PostgreSQL + Redis + `trainyard worker`;
  * submit → running latency (median and p90 over N one-epoch jobs, each submitted to an idle
    worker whose next child has already imported Keras) and submit → succeeded;
and appends the figures, with date, machine and versions, to bench/RESULTS.md.

    .venv/bin/python bench/train_overhead.py [--rows 20000] [--epochs 6] [--latency-jobs 20]

Production mode needs PostgreSQL and Redis on 127.0.0.1 (skipped with a note otherwise).
"""

import argparse
import csv
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import machine  # bench/machine.py (scripts run from bench/, so it is importable)
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
BATCH = 32
LAYERS = [
    {"type": "Dense", "units": 64, "activation": "relu"},
    {"type": "Dense", "units": 64, "activation": "relu"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]
COMPILE = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 100), dtype=np.float32)
    weights = np.random.default_rng(1234).normal(size=(100, 10)).astype(np.float32)
    return x, np.argmax((x - 0.5) @ weights, axis=1)


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i}" for i in range(x.shape[1])] + ["label"])
        writer.writerows([*row, int(label)] for row, label in zip(x.tolist(), y.tolist(), strict=True))


def steady_throughput(rows: int, epoch_end_times: list[float]) -> float:
    """Samples per second over the epochs after the first (which pays for tracing)."""
    return rows * (len(epoch_end_times) - 1) / (epoch_end_times[-1] - epoch_end_times[0])


# --- (a) plain Keras -----------------------------------------------------------------------------


def plain_keras_throughput(x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    import keras

    ends: list[float] = []
    model = keras.Sequential(
        [
            keras.Input(shape=(100,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: ends.append(time.perf_counter()))
    model.fit(x, y, epochs=epochs, batch_size=BATCH, verbose=0, callbacks=[timer])
    return steady_throughput(len(x), ends)


# --- (b, c) the service --------------------------------------------------------------------------


class Service:
    def __init__(self, url: str, log_paths: list[Path]) -> None:
        self.url = url
        self.log_paths = log_paths
        self.http = httpx.Client(base_url=url, timeout=60)

    def warm_children(self) -> int:
        return sum(p.read_text(errors="replace").count("child ready") for p in self.log_paths)

    def wait_warm(self, at_least: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.warm_children() < at_least:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker's next child never became ready")
            time.sleep(0.05)

    def upload(self, path: Path) -> str:
        with path.open("rb") as handle:
            response = self.http.post("/v1/datasets", files={"file": (path.name, handle)})
        response.raise_for_status()
        return str(response.json()["id"])

    def submit(self, dataset_id: str, epochs: int) -> tuple[str, datetime]:
        body = {"dataset_id": dataset_id, "model": {"layers": LAYERS}, "compile": COMPILE}
        body["fit"] = {"epochs": epochs, "batch_size": BATCH}
        sent = datetime.now(UTC)
        response = self.http.post("/v1/jobs", json=body)
        response.raise_for_status()
        return str(response.json()["id"]), sent

    def wait_final(self, job_id: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.http.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                if job["status"] != "succeeded":
                    raise RuntimeError(f"job {job_id} ended {job['status']}: {job['error']}")
                return dict(job)
            # Poll like a dashboard would: the timings come from the job's own timestamps, and
            # faster polling would steal CPU from the training it measures on 2 cores.
            time.sleep(0.5)
        raise RuntimeError(f"job {job_id} did not finish in {timeout}s")

    def fit_throughput(self, dataset_id: str, rows: int, epochs: int) -> float:
        children = self.warm_children()
        job_id, _ = self.submit(dataset_id, epochs)
        self.wait_final(job_id)
        self.wait_warm(children + 1)  # let the next child import Keras before anything else
        epochs_logs = self.http.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
        ends = [datetime.fromisoformat(e["finished_at"]).timestamp() for e in epochs_logs]
        return steady_throughput(rows, ends)

    def latencies(self, dataset_id: str, jobs: int) -> tuple[list[float], list[float]]:
        to_running, to_done = [], []
        for _ in range(jobs):
            self.wait_warm(self.warm_children())  # idle worker, warm child
            time.sleep(0.2)  # let the child settle into its poll loop
            children = self.warm_children()
            job_id, sent = self.submit(dataset_id, epochs=1)
            job = self.wait_final(job_id)
            to_running.append((datetime.fromisoformat(job["started_at"]) - sent).total_seconds())
            to_done.append((datetime.fromisoformat(job["finished_at"]) - sent).total_seconds())
            self.wait_warm(children + 1)
        return to_running, to_done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(commands: list[list[str]], env: dict[str, str], workdir: Path) -> Iterator[list[Path]]:
    logs, processes = [], []
    try:
        for index, command in enumerate(commands):
            log = workdir / f"process-{index}.log"
            logs.append(log)
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "app.cli", *command],
                    env=env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            )
        yield logs
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def service(mode: str, workdir: Path) -> Iterator[Service]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env |= {"TRAINYARD_HOME": str(workdir / mode), "TF_CPP_MIN_LOG_LEVEL": "2"}
    commands = [["serve", "--port", str(port)]]
    if mode == "production":
        env["TRAINYARD_DATABASE_URL"] = reset_postgres("trainyard_bench")
        env["TRAINYARD_BROKER_URL"] = reset_redis(14)
        commands.append(["worker", "--concurrency", "1"])
    with running(commands, env, workdir) as logs:
        svc = Service(f"http://127.0.0.1:{port}", logs)
        deadline = time.monotonic() + 120
        while True:
            try:
                if svc.http.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode} service did not start: {logs[0].read_text()[-3000:]}")
            time.sleep(0.2)
        svc.wait_warm(1)
        yield svc


def reset_postgres(name: str) -> str:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def reset_redis(db: int) -> str:
    import redis

    url = f"redis://127.0.0.1:6379/{db}"
    redis.Redis.from_url(url).flushdb()
    return url


def services_up() -> bool:
    for port in (5432, 6379):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
    return True


# --- report --------------------------------------------------------------------------------------


def environment() -> str:
    return machine.describe("celery", "sqlalchemy", "fastapi")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--latency-jobs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="throughput repeats; the best is kept")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    x, y = make_data(args.rows)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as tmp:
        workdir = Path(tmp)
        big, small = workdir / "seed-mlp.csv", workdir / "tiny.csv"
        write_csv(big, x, y)
        write_csv(small, *make_data(256, seed=1))
        modes = ["embedded"] + (["production"] if services_up() else [])
        for mode in modes:
            with service(mode, workdir) as svc:
                big_id, small_id = svc.upload(big), svc.upload(small)
                plain, served = [], []
                for _ in range(args.rounds):  # alternate, with the service idle during the baseline
                    plain.append(plain_keras_throughput(x, y, args.epochs))
                    served.append(svc.fit_throughput(big_id, args.rows, args.epochs))
                to_running, to_done = svc.latencies(small_id, args.latency_jobs)
            ratio = max(served) / max(plain)
            running_ms = statistics.median(to_running) * 1000, percentile(to_running, 90) * 1000
            rows.append(
                f"| {mode} | {max(plain):,.0f} | {max(served):,.0f} | **{ratio:.3f}** | "
                f"{running_ms[0]:.0f} / {running_ms[1]:.0f} | "
                f"{statistics.median(to_done) * 1000:.0f} |"
            )
            print(rows[-1], flush=True)

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        f"## train_overhead — {stamp}",
        "",
        f"Machine: {environment()}.",
        f"Seed MLP (100 → 64 → 64 → 10), {args.rows:,} rows, batch {BATCH}, {args.epochs} epochs; "
        f"throughput over epochs 2-{args.epochs}, best of {args.rounds} alternating rounds; "
        f"latencies over {args.latency_jobs} one-epoch jobs on an idle worker with a warm child.",
        "",
        "| mode | plain Keras samples/s | service samples/s | service / plain "
        "| submit→running ms (median / p90) | submit→succeeded ms (median) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    if "production" not in " ".join(rows):
        section.insert(-1, "PostgreSQL/Redis were not reachable: production mode not measured.")
    previous = args.out.read_text() if args.out.exists() else "# Benchmark results\n\n"
    args.out.write_text(previous.rstrip("\n") + "\n\n" + "\n".join(section))
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
