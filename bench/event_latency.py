"""Epoch-to-client latency of the live job event stream (SSE), LISTEN/NOTIFY against polling.

One PostgreSQL database, one Redis database, one `trainyard worker`, and two `trainyard serve`
processes in the same run: one woken by LISTEN/NOTIFY (the production default), one polling the
table every `TRAINYARD_EVENTS_POLL_S` (the embedded fallback; here the baseline). A client
streams the same job from both while it trains; an epoch's latency is the client's clock when
the event arrived minus the epoch's `finished_at` (the worker's clock when it recorded the
epoch: same machine). Prints median and p95 per server.

    PYTHONPATH=. .venv/bin/python bench/event_latency.py [--epochs 60] [--rows 4000]

Needs PostgreSQL on 127.0.0.1:5432 (trust) and Redis on 127.0.0.1:6379 (uses
TRAINYARD_TEST_REDIS_DB, default 15, which it empties).
"""

import argparse
import statistics
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx

from app.config import Settings
from app.db.migrate import upgrade_to_head
from tests.e2e.conftest import free_port, wait_until_ready
from tests.factories import csv_bytes, job_request
from tests.services import TrainyardProcess, fresh_postgres_database, fresh_redis_url
from tests.sse import read_events

SSE = {"Accept": "text/event-stream"}


def stream_latencies(url: str, job_id: str, out: list[float], ready: threading.Event) -> None:
    with (
        httpx.Client(base_url=url, timeout=300) as client,
        client.stream("GET", f"/v1/jobs/{job_id}/events", headers=SSE) as response,
    ):
        ready.set()
        for event in read_events(response.iter_lines()):
            if event.event == "epoch":
                finished = datetime.fromisoformat(event.json()["finished_at"])
                out.append((datetime.now(UTC) - finished).total_seconds() * 1000)
            elif event.event == "end":
                return


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"| {name} | {len(values)} | {statistics.median(values):.1f} | {p95:.1f} | {max(values):.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--rows", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres_database() as database_url:
        home = Path(tmp)
        settings = Settings(home=home / "home", database_url=database_url, broker_url=fresh_redis_url())
        upgrade_to_head(settings)
        polling = settings.model_copy(update={"events_listen": False})
        worker = TrainyardProcess(["worker"], settings, home / "worker.log")
        servers: dict[str, tuple[str, TrainyardProcess]] = {}
        try:
            for name, config in (("LISTEN/NOTIFY", settings), (f"polling {settings.events_poll_s} s", polling)):
                port = free_port()
                process = TrainyardProcess(["serve", "--port", str(port)], config, home / f"serve-{port}.log")
                servers[name] = (f"http://127.0.0.1:{port}", process)
            for url, process in servers.values():
                wait_until_ready(process, f"{url}/readyz")
            worker.wait_for_log("child ready", timeout=180)
            url = next(iter(servers.values()))[0]
            with httpx.Client(base_url=url, timeout=120) as client:
                upload = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=args.rows))})
                request = job_request(upload.json()["id"], fit={"epochs": args.epochs, "batch_size": 32})
                job_id = client.post("/v1/jobs", json=request).json()["id"]
            results: dict[str, list[float]] = {name: [] for name in servers}
            threads = []
            for name, (server_url, _) in servers.items():
                ready = threading.Event()
                thread = threading.Thread(target=stream_latencies, args=(server_url, job_id, results[name], ready))
                thread.start()
                ready.wait(60)
                threads.append(thread)
            for thread in threads:
                thread.join()
            # The first epochs may have been recorded before the streams connected: left out.
            print("| server | epochs | median ms | p95 ms | max ms |\n|---|---|---|---|---|")
            for name, values in results.items():
                print(summary(name, values[2:]))
        finally:
            for _, process in servers.values():
                process.stop()
            worker.stop()


if __name__ == "__main__":
    main()
