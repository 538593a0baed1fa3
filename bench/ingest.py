"""How fast does trainyard ingest a large upload, at what memory cost, and does training on the
stored (memory-mapped) arrays cost anything?

Measures, in one run on this machine:
  * ingest throughput: file size / request time (upload + parse + store) for a numeric CSV of
    at least 200 MB and a Parquet file of the same data, each uploaded with httpx streaming to
    `trainyard serve` in embedded mode (TRAINYARD_HOME in a temporary directory, a free port);
  * the API process's peak RSS growth during each request (VmRSS from /proc/<pid>/status,
    sampled every 20 ms from a thread) against its RSS just before;
  * fit throughput (samples/s over the epochs after the first) of a small MLP on the stored
    arrays memory-mapped, as training reads them (app.ml.data.load_arrays), against the same
    arrays loaded into memory: same process, same model, alternating rounds, best of each;
and appends the figures, with date, machine and versions, to bench/RESULTS.md.

    .venv/bin/python bench/ingest.py [--rows 250000] [--epochs 4] [--rounds 2]

The generated files live in a temporary directory and are deleted afterwards.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import machine  # bench/machine.py (scripts run from bench/, so it is importable)
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
FEATURES = 100
CLASSES = 10
PARQUET_ROW_GROUP = 65_536
BATCH = 256
SAMPLE_S = 0.02


def make_files(directory: Path, rows: int) -> tuple[Path, Path]:
    """A numeric CSV (100 float columns with 6 decimals, an integer label) and the same data as
    Parquet, written by pyarrow in blocks so that generating them stays fast and small."""
    csv_path, parquet_path = directory / "numeric.csv", directory / "numeric.parquet"
    rng = np.random.default_rng(0)
    weights = np.random.default_rng(1234).normal(size=(FEATURES, CLASSES))
    names = [f"f{i}" for i in range(FEATURES)] + ["label"]
    schema = pa.schema([(name, pa.float64()) for name in names[:-1]] + [("label", pa.int64())])
    with (
        pa_csv.CSVWriter(csv_path, schema) as csv_writer,
        pq.ParquetWriter(parquet_path, schema) as parquet_writer,
    ):
        for start in range(0, rows, PARQUET_ROW_GROUP):
            count = min(PARQUET_ROW_GROUP, rows - start)
            x = np.round(rng.random((count, FEATURES)), 6)
            y = np.argmax((x - 0.5) @ weights, axis=1)
            table = pa.table([*x.T, y], schema=schema)
            csv_writer.write_table(table)
            parquet_writer.write_table(table, row_group_size=PARQUET_ROW_GROUP)
    return csv_path, parquet_path


# --- the service ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(home: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`trainyard serve` in embedded mode; waits for the API and its worker's first child."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env |= {"TRAINYARD_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = home.parent / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while "child ready" not in log.read_text(errors="replace"):
            # The embedded worker imports Keras at start: let it finish before measuring.
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        while httpx.get(f"{url}/readyz", timeout=5).status_code != 200:
            time.sleep(0.2)
        time.sleep(2)  # let start-up work (recovery sweep, imports) settle
        yield url, process, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's VmRSS every 20 ms on a thread; `peak` is the largest sample."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(SAMPLE_S)


@dataclass
class Ingest:
    name: str
    size_mb: float
    seconds: float
    parse_seconds: float  # of `seconds`, from the service's log; the rest is the upload
    rss_growth_mb: float
    dataset: dict[str, Any]

    @property
    def mb_per_s(self) -> float:
        return self.size_mb / self.seconds


def parse_seconds(log: Path, dataset_id: str) -> float:
    found = re.search(rf"dataset {dataset_id} stored: .* parsed in ([0-9.]+) s", log.read_text())
    return float(found.group(1)) if found else float("nan")


def upload(url: str, pid: int, log: Path, path: Path) -> Ingest:
    baseline = min(rss_mb(pid) for _ in range(5))
    with path.open("rb") as handle, RssSampler(pid) as sampler:
        started = time.perf_counter()
        # httpx reads the file part from the handle in chunks while sending: nothing is
        # buffered whole, on either side.
        response = httpx.post(f"{url}/v1/datasets", files={"file": (path.name, handle)}, timeout=600)
        seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"upload of {path.name}: {response.status_code} {response.text}")
    time.sleep(0.5)  # let the log line reach the file
    return Ingest(
        name=path.suffix.lstrip("."),
        size_mb=path.stat().st_size / 1e6,
        seconds=seconds,
        parse_seconds=parse_seconds(log, response.json()["id"]),
        rss_growth_mb=sampler.peak - baseline,
        dataset=response.json(),
    )


# --- fit on the stored arrays --------------------------------------------------------------------


def fit_throughput(x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(x.shape[1],)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ends: list[float] = []
    timer = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: ends.append(time.perf_counter()))
    model.fit(x, y, epochs=epochs, batch_size=BATCH, verbose=0, callbacks=[timer])
    return len(x) * (len(ends) - 1) / (ends[-1] - ends[0])


def compare_fits(dataset_dir: Path, epochs: int, rounds: int) -> tuple[float, float]:
    """Best samples/s on the memory-mapped arrays and on in-memory copies, alternating which
    goes first, so that neither always runs in the other's wake."""
    from app.ml.data import load_arrays

    mapped = load_arrays(dataset_dir, "sparse_categorical_crossentropy", CLASSES)
    assert isinstance(mapped.x, np.memmap), "training should read the stored arrays mapped"
    in_memory = (np.array(mapped.x), np.array(mapped.y))
    mapped_runs, memory_runs = [], []
    for index in range(rounds):
        if index % 2 == 0:
            mapped_runs.append(fit_throughput(mapped.x, mapped.y, epochs))
            memory_runs.append(fit_throughput(*in_memory, epochs))
        else:
            memory_runs.append(fit_throughput(*in_memory, epochs))
            mapped_runs.append(fit_throughput(mapped.x, mapped.y, epochs))
        print(f"fit: mmap {mapped_runs[-1]:,.0f} · in memory {memory_runs[-1]:,.0f} samples/s")
    return max(mapped_runs), max(memory_runs)


# --- report --------------------------------------------------------------------------------------


def environment() -> str:
    return machine.describe("pyarrow", "numpy", "fastapi", "uvicorn", "httpx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000, help="250,000 rows ≈ 222 MB of CSV")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="fit repeats; the best is kept")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="trainyard-ingest-") as tmp:
        workdir = Path(tmp)
        csv_path, parquet_path = make_files(workdir, args.rows)
        home = workdir / "home"
        with serve(home) as (url, process, log):
            ingests = [upload(url, process.pid, log, path) for path in (csv_path, parquet_path)]
        for ingest in ingests:
            print(
                f"{ingest.name}: {ingest.size_mb:.0f} MB in {ingest.seconds:.2f} s "
                f"(parse {ingest.parse_seconds:.2f} s) = {ingest.mb_per_s:.0f} MB/s; "
                f"peak RSS growth {ingest.rss_growth_mb:.0f} MB",
                flush=True,
            )
        stored = home / "datasets" / ingests[0].dataset["id"]
        mapped, in_memory = compare_fits(stored, args.epochs, args.rounds)
    load_after = os.getloadavg()[0]

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        f"## ingest — {stamp}",
        "",
        f"Machine: {environment()}. Load average (1 min) {load_before:.1f} before, "
        f"{load_after:.1f} after: on a busy machine, figures move with the neighbours.",
        f"{args.rows:,} rows x {FEATURES} float features (6 decimals) + an integer label; Parquet "
        f"written by pyarrow with {PARQUET_ROW_GROUP:,}-row groups. Ingest = file size / request "
        "time (upload + parse + store) against `trainyard serve` (embedded, its worker idle); RSS "
        "growth = the API process's peak VmRSS (sampled every 20 ms) minus its VmRSS before.",
        "",
        "| file | size MB | request s | of which parse + store s | ingest MB/s | peak RSS growth MB |",
        "|---|---|---|---|---|---|",
        *(
            f"| {i.name} | {i.size_mb:.0f} | {i.seconds:.2f} | {i.parse_seconds:.2f} | "
            f"**{i.mb_per_s:.0f}** | **{i.rss_growth_mb:.0f}** |"
            for i in ingests
        ),
        "",
        f"Fit of a small MLP ({FEATURES} → 64 → 64 → {CLASSES}, batch {BATCH}) on the stored CSV "
        f"dataset, samples/s over epochs 2-{args.epochs}, best of {args.rounds} alternating "
        "rounds, in the benchmark process:",
        "",
        "| arrays | samples/s |",
        "|---|---|",
        f"| memory-mapped (as training loads them) | {mapped:,.0f} |",
        f"| loaded into memory | {in_memory:,.0f} |",
        f"| **mmap / in-memory** | **{mapped / in_memory:.3f}** |",
        "",
    ]
    previous = args.out.read_text() if args.out.exists() else "# Benchmark results\n\n"
    args.out.write_text(previous.rstrip("\n") + "\n\n" + "\n".join(section))
    print("\n".join(section))
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
