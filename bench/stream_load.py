"""Training throughput of a job while 20 dashboard clients stream events, against none.

PostgreSQL + Redis, one worker, one `trainyard serve`; the same job (same dataset and spec) is
trained in rounds that alternate between no clients and `--clients` clients each holding
`GET /v1/events` open (the dashboard stream of every job) in the same run. Throughput is the
median `samples_per_second` of the job's epoch events past the first (tracing). Prints each
round and the ratio of the medians (target ≥ 0.95).

    PYTHONPATH=. .venv/bin/python bench/stream_load.py [--clients 20] [--rounds 2] [--epochs 12]
"""

import argparse
import statistics
import tempfile
import threading
from pathlib import Path

import httpx

from app.config import Settings
from app.db.migrate import upgrade_to_head
from tests.e2e.conftest import free_port, wait_until_ready
from tests.factories import csv_bytes, job_request
from tests.services import TrainyardProcess, fresh_postgres_database, fresh_redis_url
from tests.sse import read_events

SSE = {"Accept": "text/event-stream"}


def dashboard(url: str, stop: threading.Event, received: list[int]) -> None:
    with (
        httpx.Client(base_url=url, timeout=None) as client,
        client.stream("GET", "/v1/events", headers=SSE) as response,
    ):
        for _ in read_events(response.iter_lines()):
            received.append(1)
            if stop.is_set():
                return


def train_once(client: httpx.Client, dataset_id: str, epochs: int) -> float:
    request = job_request(dataset_id, fit={"epochs": epochs, "batch_size": 32})
    job_id = client.post("/v1/jobs", json=request).json()["id"]
    rates = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=SSE) as response:
        for event in read_events(response.iter_lines()):
            if event.event == "epoch" and event.json()["epoch"] > 1:
                rates.append(event.json()["samples_per_second"])
            if event.event == "end":
                break
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres_database() as database_url:
        home = Path(tmp)
        settings = Settings(home=home / "home", database_url=database_url, broker_url=fresh_redis_url())
        upgrade_to_head(settings)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        worker = TrainyardProcess(["worker"], settings, home / "worker.log")
        serve = TrainyardProcess(["serve", "--port", str(port)], settings, home / "serve.log")
        try:
            wait_until_ready(serve, f"{url}/readyz")
            worker.wait_for_log("child ready", timeout=180)
            with httpx.Client(base_url=url, timeout=300) as client:
                upload = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=args.rows))})
                dataset_id = upload.json()["id"]
                train_once(client, dataset_id, 2)  # warm the worker child
                alone: list[float] = []
                watched: list[float] = []
                for round_ in range(args.rounds):
                    alone.append(train_once(client, dataset_id, args.epochs))
                    stop, received = threading.Event(), []
                    threads = [
                        threading.Thread(target=dashboard, args=(url, stop, received), daemon=True)
                        for _ in range(args.clients)
                    ]
                    for thread in threads:
                        thread.start()
                    watched.append(train_once(client, dataset_id, args.epochs))
                    stop.set()
                    print(
                        f"round {round_ + 1}: alone {alone[-1]:,.0f} samples/s, with {args.clients} clients "
                        f"{watched[-1]:,.0f} samples/s ({len(received)} events delivered to them)"
                    )
            ratio = statistics.median(watched) / statistics.median(alone)
            print(
                f"median alone {statistics.median(alone):,.0f}, watched {statistics.median(watched):,.0f}: {ratio:.3f}"
            )
        finally:
            serve.stop()
            worker.stop()


if __name__ == "__main__":
    main()
