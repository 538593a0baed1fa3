"""The dashboard's two figures, in one run on one server (PostgreSQL + Redis, one worker):

1. The jobs page (`GET /ui` and its first data call, `GET /ui/fragments/jobs`) with 10 jobs in
   the database, 50 (one full page) and 10,000 (rows added to the same table, then removed, in
   `--page-rounds` rounds): median and p95 of the loads, and the ratios (keyset pagination: the
   goal is ≈ 1 against 50, the same rows drawn; against 10 it also carries drawing five times the rows).
2. A training job's throughput while `--clients` dashboard clients watch, against none,
   alternating in rounds: clients that only hold `GET /v1/events` open (the jobs table), and
   clients that do what the job page does in a browser (hold the stream and, on every epoch
   event, fetch the job's fragment and `curves.svg` with the `ETag` they last got). Throughput is
   the median `samples_per_second` of the job's epochs past the first; the ratio of the medians
   against training alone is the figure (target ≥ 0.95).

Appends a section to bench/RESULTS.md.

    TRAINYARD_TEST_REDIS_DB=13 PYTHONPATH=. .venv/bin/python bench/dashboard.py [--clients 20]
"""

import argparse
import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import machine  # bench/machine.py (scripts run from bench/, so they are importable)
from sqlalchemy import delete
from stream_load import dashboard as events_only  # bench/stream_load.py: a client holding /v1/events
from stream_load import train_once  # submit a job, follow it, its median samples/s

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import session_scope
from app.models import Job, JobStatus
from tests.e2e.conftest import free_port, wait_until_ready
from tests.factories import csv_bytes, job_row
from tests.services import TrainyardProcess, fresh_postgres_database, fresh_redis_url
from tests.sse import read_events

SSE = {"Accept": "text/event-stream"}
RESULTS = Path(__file__).with_name("RESULTS.md")


def add_jobs(settings: Settings, count: int, offset: int) -> None:
    """`count` finished jobs straight into the table, a second apart (as if submitted over a day)."""
    began = datetime.now(UTC) - timedelta(days=1)
    with session_scope(settings.sqlalchemy_url) as session:
        for start in range(0, count, 1000):
            session.add_all(
                job_row(
                    name=f"bulk-{offset + i}",
                    status=JobStatus.SUCCEEDED,
                    epoch=5,
                    epochs=5,
                    created_at=began + timedelta(seconds=offset + i),
                )
                for i in range(start, min(start + 1000, count))
            )
            session.commit()


def remove_jobs(settings: Settings) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        session.execute(delete(Job).where(Job.name.startswith("bulk-")))
        session.commit()


def page_times(client: httpx.Client, requests: int, rows: int) -> list[float]:
    """Seconds per jobs-page load: the HTML shell, then the first page of rows."""
    times = []
    for i in range(requests + 3):
        began = time.perf_counter()
        client.get("/ui").raise_for_status()
        page = client.get("/ui/fragments/jobs")
        page.raise_for_status()
        if i >= 3:  # the first loads warm the connection pool and the templates
            times.append(time.perf_counter() - began)
    assert page.text.count("data-job-id=") == rows, "the first page of rows"
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def watcher(url: str, stop: threading.Event, loads: list[int]) -> None:
    """One browser on the job page: the event stream, and a refetch of the fragment and curves
    of the job an epoch event names."""
    etags: dict[str, str] = {}
    with (
        httpx.Client(base_url=url, timeout=None) as client,
        client.stream("GET", "/v1/events", headers=SSE) as response,
    ):
        for event in read_events(response.iter_lines()):
            if stop.is_set():
                return
            if event.event != "epoch":
                continue
            job_id = event.json()["job_id"]
            client.get(f"/ui/fragments/jobs/{job_id}").raise_for_status()
            headers = {"If-None-Match": etags[job_id]} if job_id in etags else {}
            picture = client.get(f"/v1/jobs/{job_id}/curves.svg", headers=headers)
            etags[job_id] = picture.headers["ETag"]
            loads.append(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--page-rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres_database() as database_url:
        home = Path(tmp)
        settings = Settings(
            home=home / "home", database_url=database_url, broker_url=fresh_redis_url(), access_log=False
        )
        upgrade_to_head(settings)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        worker = TrainyardProcess(["worker"], settings, home / "worker.log")
        serve = TrainyardProcess(["serve", "--port", str(port)], settings, home / "serve.log")
        try:
            wait_until_ready(serve, f"{url}/healthz")
            with httpx.Client(base_url=url, timeout=300) as client:
                pages: dict[int, list[float]] = {10: [], 50: [], 10_000: []}
                for _ in range(args.page_rounds):
                    in_table = 0
                    for total in pages:
                        add_jobs(settings, total - in_table, in_table)
                        in_table = total
                        pages[total] += page_times(client, args.requests, rows=min(total, 50))
                    remove_jobs(settings)
                for total, times in pages.items():
                    print(f"jobs page, {total:,} jobs: median {statistics.median(times) * 1000:.1f} ms")

                worker.wait_for_log("child ready", timeout=300)
                upload = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=args.rows))})
                dataset_id = upload.json()["id"]
                train_once(client, dataset_id, 2)  # warm the worker child
                rates: dict[str, list[float]] = {"alone": [], "streams": [], "pages": []}
                loads: list[int] = []
                for round_ in range(args.rounds):
                    rates["alone"].append(train_once(client, dataset_id, args.epochs))
                    for mode, client_fn in (("streams", events_only), ("pages", watcher)):
                        stop = threading.Event()
                        threads = [
                            threading.Thread(target=client_fn, args=(url, stop, loads), daemon=True)
                            for _ in range(args.clients)
                        ]
                        for thread in threads:
                            thread.start()
                        rates[mode].append(train_once(client, dataset_id, args.epochs))
                        stop.set()
                    print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()))
        finally:
            serve.stop()
            worker.stop()
    write_results(args, pages, rates)


def write_results(args: argparse.Namespace, pages: dict[int, list[float]], rates: dict[str, list[float]]) -> None:
    median = {mode: statistics.median(values) for mode, values in rates.items()}
    few, full, many = pages[10], pages[50], pages[10_000]
    rounds = "\n".join(
        f"| {i + 1} | {a:,.0f} | {s:,.0f} | {p:,.0f} |"
        for i, (a, s, p) in enumerate(zip(rates["alone"], rates["streams"], rates["pages"], strict=True))
    )
    section = f"""
## dashboard — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC

Machine: {machine.describe("fastapi", "uvicorn", "jinja2", "sqlalchemy", "psycopg")}; load
average {os.getloadavg()[0]:.1f} at the end (other sessions share the machine). PostgreSQL + Redis,
one `trainyard serve` and one `trainyard worker`, everything in one run (bench/dashboard.py).

Jobs page (`GET /ui` + its first data call `GET /ui/fragments/jobs`), {args.requests} loads per
point, {args.page_rounds} rounds of 10, 50 and 10,000 jobs in the table:

| jobs in the database | median ms | p95 ms |
|---|---|---|
| 10 (10 rows shown) | {statistics.median(few) * 1000:.1f} | {p95(few) * 1000:.1f} |
| 50 (one full page: 50 rows shown) | {statistics.median(full) * 1000:.1f} | {p95(full) * 1000:.1f} |
| 10,000 (the first 50 rows shown) | {statistics.median(many) * 1000:.1f} | {p95(many) * 1000:.1f} |
| ratio 10,000 / 10 | **{statistics.median(many) / statistics.median(few):.2f}** | |
| ratio 10,000 / 50 (same rows drawn) | **{statistics.median(many) / statistics.median(full):.2f}** | |

Training throughput (samples/s, median of the epochs past the first; {args.rows:,} rows, batch
32, {args.epochs} epochs): alone; while {args.clients} clients hold `GET /v1/events` open (the jobs
table); while {args.clients} job pages watch (the stream, and on every epoch event the job
fragment and `curves.svg` with the ETag they last had):

| round | alone | {args.clients} event streams | {args.clients} job pages |
|---|---|---|---|
{rounds}
| median | {median["alone"]:,.0f} | {median["streams"]:,.0f} (**{median["streams"] / median["alone"]:.3f}**) \
| {median["pages"]:,.0f} (**{median["pages"] / median["alone"]:.3f}**) |
"""
    with RESULTS.open("a") as results:
        results.write(section)
    print(section)


if __name__ == "__main__":
    main()
