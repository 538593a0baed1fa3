"""Hyperparameter studies over two workers: the wall time of a 12-trial study at parallelism 1
against parallelism 3, and the best value TPE finds against random search with the same budget.

In one run on this machine:
  * a fresh PostgreSQL database, a Redis database (`--redis-db`, emptied first), two
    `trainyard worker` processes (one child each; their study drivers run the studies) and the
    API in-process (no lifespan: every study step is the workers' doing);
  * one dataset (1,024 rows, 8 features, 5 classes) and one space: units 2-64 (log), learning
    rate 1e-4-0.3 (log), optimizer Adam | SGD | RMSprop, 3 epochs, objective val_accuracy;
  * the study with TPE at parallelism 1, then at parallelism 3, then random search at
    parallelism 3, same seed and budget;
and appends the figures, with date, machine and versions, to bench/RESULTS.md.

    PYTHONPATH=. .venv/bin/python bench/study.py [--trials 12] [--redis-db 4] [--no-write]
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import machine  # bench/machine.py (scripts run from bench/, so it is importable)
import redis

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.migrate import upgrade_to_head  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.factories import csv_bytes, mlp_layers, wait_for  # noqa: E402
from tests.integration.drills.harness import DRILL_SETTINGS, WorkerPool  # noqa: E402
from tests.services import fresh_postgres_database  # noqa: E402
from tests.studies import base_request  # noqa: E402

SPACE = {
    "/model/layers/0/units": {"type": "int", "low": 2, "high": 64, "log": True},
    "/compile/optimizer/learning_rate": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
    "/compile/optimizer/type": {"type": "categorical", "choices": ["Adam", "SGD", "RMSprop"]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--redis-db", type=int, default=4)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-write", action="store_true", help="print, do not append to bench/RESULTS.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    broker = f"redis://127.0.0.1:6379/{args.redis_db}"
    redis.Redis.from_url(broker).flushdb()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as directory, fresh_postgres_database() as database_url:
        settings = Settings(
            home=Path(directory) / "home",
            database_url=database_url,
            broker_url=broker,
            **(DRILL_SETTINGS | {"study_interval_s": 0.3}),
        )
        upgrade_to_head(settings)
        pool = WorkerPool(settings, Path(directory))
        try:
            pool.start(2)
            api = TestClient(create_app(settings), base_url="http://127.0.0.1")
            data = csv_bytes(rows=1024, features=8, classes=5, seed=321)
            dataset_id = api.post("/v1/datasets", files={"file": ("d.csv", data)}).json()["id"]
            for sampler, parallelism in (("tpe", 1), ("tpe", 3), ("random", 3)):
                runs.append(run_study(api, dataset_id, sampler, parallelism, args.trials, args.seed))
                print(runs[-1])
        finally:
            pool.stop_all()
    report = render(runs, args.trials, load)
    print(report)
    if not args.no_write:
        with RESULTS.open("a") as out:
            out.write("\n" + report)


def run_study(
    api: TestClient, dataset_id: str, sampler: str, parallelism: int, trials: int, seed: int
) -> dict[str, Any]:
    request = {
        "name": f"bench-{sampler}-p{parallelism}",
        "dataset_id": dataset_id,
        "base": {**base_request(epochs=3, batch_size=32), "model": {"layers": mlp_layers(classes=5, hidden=8)}},
        "search_space": SPACE,
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "sampler": sampler,
        "max_trials": trials,
        "parallelism": parallelism,
        "seed": seed,
    }
    started = time.monotonic()
    response = api.post("/v1/studies", json=request)
    assert response.status_code == 202, response.text
    study_id = response.json()["id"]

    def ended() -> dict[str, Any] | None:
        study = api.get(f"/v1/studies/{study_id}").json()
        return study if study["status"] != "running" else None

    study = wait_for(ended, timeout=3600, interval=0.5, what=f"study {study_id}")
    values = [t["value"] for t in study["trials"] if t["value"] is not None]
    return {
        "sampler": sampler,
        "parallelism": parallelism,
        "wall_s": time.monotonic() - started,
        "status": study["status"],
        "best": max(values) if values else None,
        "median": sorted(values)[len(values) // 2] if values else None,
        "succeeded": sum(t["status"] == "succeeded" for t in study["trials"]),
    }


def render(runs: list[dict[str, Any]], trials: int, load: float) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## study — {now}",
        "",
        f"Machine: {machine.describe('optuna', 'celery', 'sqlalchemy')}; load average {load:.1f} at the start.",
        f"{trials} trials per study on PostgreSQL + Redis, two `trainyard worker` processes (one child each,",
        "a fresh child per job); space: units 2-64 (log), learning rate 1e-4-0.3 (log), Adam | SGD | RMSprop;",
        "3 epochs on 1,024 rows x 8 features, 5 classes; objective val_accuracy (higher is better).",
        "",
        "| sampler | parallelism | wall s | trials succeeded | best val_accuracy | median val_accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        best = f"{run['best']:.4f}" if run["best"] is not None else "-"
        median = f"{run['median']:.4f}" if run["median"] is not None else "-"
        where = f"| {run['sampler']} | {run['parallelism']} | {run['wall_s']:.1f} | {run['succeeded']}"
        lines.append(f"{where} | {best} | {median} |")
    p1, p3, rnd = runs
    lines += [
        "",
        f"Parallelism 3 against 1 (TPE): wall time x **{p3['wall_s'] / p1['wall_s']:.2f}** "
        f"(two workers, so at most 2 trials train at once; the third waits queued).",
        f"TPE against random search at the same budget (parallelism 3): best "
        f"{p3['best'] or 0:.4f} vs {rnd['best'] or 0:.4f}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
