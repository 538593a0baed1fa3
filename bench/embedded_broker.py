"""How fast does the embedded broker hand a task to an idle worker: kombu's filesystem transport
against trainyard's (app/embedded/transport.py: atomic writes, FIFO)?

Measures, in one run on this machine, for each transport with trainyard's own Celery settings
(app.queue.celery_config, polling_interval 0.05): pickup latency = task start (the task's first
line, in a Celery worker subprocess with the solo pool, so no child process is involved) minus
the moment just before `send_task`, over N no-op tasks sent one at a time to the idle worker;
rounds alternate between the transports. A worker that dies (kombu's transport: a message read
while half-written, kombu#1551) is counted, started again, and its task left out. Appends median
/ p95 / max and the deaths with date, machine and versions to bench/RESULTS.md.

    .venv/bin/python bench/embedded_broker.py [--tasks 50] [--rounds 2]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import machine  # bench/machine.py (scripts run from bench/, so it is importable)
from celery import Celery

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
TRANSPORTS = {"kombu filesystem://": "filesystem://", "trainyard-fs://": "trainyard-fs://"}
TASK = "bench.noop"

celery_app = Celery("bench-embedded-broker")


@celery_app.task(name=TASK)
def noop(marker: str) -> None:
    started = time.time()
    temporary = Path(marker + ".tmp")
    temporary.write_text(repr(started))
    temporary.rename(marker)


def configure(app: Celery, home: Path, broker_url: str) -> None:
    from app.config import Settings
    from app.queue import celery_config

    settings = Settings(home=home)
    settings.ensure_dirs()
    (settings.broker_dir / "control").mkdir(exist_ok=True)
    app.conf.update(celery_config(settings))
    app.conf.update(broker_url=broker_url, worker_hijack_root_logger=False)


def run_worker(home: Path, broker_url: str) -> None:
    configure(celery_app, home, broker_url)
    celery_app.worker_main(
        ["worker", "--pool=solo", "--queues=training", "--loglevel=WARNING", "--without-gossip", "--without-mingle"]
    )


class WorkerDied(Exception):
    """The worker exited while a task was waiting (kombu's transport: a torn message)."""


def pickups(home: Path, broker_url: str, tasks: int) -> tuple[list[float], int]:
    """Milliseconds from just before each send to the task's start, one task at a time; and how
    often the worker died (it is started again, and its task counted as lost)."""
    client = Celery("bench-client")  # one per transport: a client keeps its first connection
    configure(client, home, broker_url)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")])}
    figures: list[float] = []
    deaths = 0
    while len(figures) + deaths < tasks:
        worker = subprocess.Popen([sys.executable, __file__, "worker", str(home), broker_url], env=env)
        try:
            # The worker's start-up is not pickup.
            send_and_wait(client, worker, home, f"warm-up-{deaths}", timeout=120)
            while len(figures) + deaths < tasks:
                figures.append(send_and_wait(client, worker, home, f"task-{len(figures) + deaths}", timeout=30))
        except WorkerDied as died:
            deaths += 1
            print(f"{broker_url}: {died}", flush=True)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    return figures, deaths


def send_and_wait(client: Celery, worker: subprocess.Popen[bytes], home: Path, name: str, timeout: float) -> float:
    marker = home / name
    sent = time.time()
    client.send_task(TASK, args=[str(marker)], queue="training")
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if worker.poll() is not None:
            raise WorkerDied(f"the worker exited with {worker.returncode} while {name} waited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not start within {timeout} s")
        time.sleep(0.0005)
    return (float(marker.read_text()) - sent) * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50, help="tasks per transport per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per transport")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    figures: dict[str, list[float]] = {label: [] for label in TRANSPORTS}
    deaths = dict.fromkeys(TRANSPORTS, 0)
    for round_index in range(args.rounds):
        for label, url in TRANSPORTS.items():
            with tempfile.TemporaryDirectory(prefix="trainyard-broker-") as tmp:
                round_figures, round_deaths = pickups(Path(tmp), url, args.tasks)
            figures[label] += round_figures
            deaths[label] += round_deaths
            print(f"round {round_index + 1}, {label}: median {statistics.median(figures[label]):.1f} ms", flush=True)
    load_after = os.getloadavg()[0]

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        f"## embedded_broker — {stamp}",
        "",
        f"Machine: {machine.describe('celery', 'kombu')}. Load average (1 min) {load_before:.1f} "
        f"before, {load_after:.1f} after: on a busy machine, figures move with the neighbours.",
        f"Pickup = from just before `send_task` to the task's start; {args.tasks} no-op tasks sent one at a time "
        f"to an idle Celery worker (solo pool, trainyard's Celery settings, polling_interval 0.05), "
        f"{args.rounds} alternating rounds per transport, all tasks pooled.",
        "",
        "| transport | tasks started | median ms | p95 ms | max ms | worker deaths (task lost) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {label} | {len(values)} | **{statistics.median(values):.1f}** | "
            f"{percentile(values, 0.95):.1f} | {max(values):.1f} | {deaths[label]} |"
            for label, values in figures.items()
        ),
        "",
    ]
    previous = args.out.read_text() if args.out.exists() else "# Benchmark results\n\n"
    args.out.write_text(previous.rstrip("\n") + "\n\n" + "\n".join(section))
    print("\n".join(section))
    print(f"appended to {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        run_worker(Path(sys.argv[2]), sys.argv[3])
    else:
        main()
