"""How long does `POST /v1/jobs` take for Keras's own model zoo?

Builds every `keras.applications` architecture (weights=None, smallest input, 10 classes),
uploads one image dataset per input size, and times `POST /v1/jobs` with each `to_json()`
through the app in process (the whole request: body parsing, translation, checks, the job
row), in two modes, interleaved per model so both see the same machine load:

  * before: every spec built and dry-run at the door, as before this change
    (TRAINYARD_DOOR_BUILD_MAX_LAYERS set beyond any model);
  * after:  the default: specs over TRAINYARD_DOOR_BUILD_MAX_LAYERS (16) layers get the checks
    that need no model at the door, and are built by the worker as the job's first step.

"before" runs only for the models named with --before (it costs seconds to minutes each);
"after" for the whole zoo. Also times the translation of a 5,000-layer chain listed
last-first (quadratic ordering took 32 s before) and its refusal at the default layer cap.
Appends to bench/RESULTS.md.

    PYTHONPATH=. .venv/bin/python bench/door.py [--before MobileNetV3Small,ResNet50,DenseNet121]
"""

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.main import create_app
from bench.machine import describe
from tests.factories import npz_bytes
from tests.unit.api.test_keras_config_api import SMALLEST, chain

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def client(home: Path, door_build_max_layers: int) -> TestClient:
    settings = Settings(home=home, door_build_max_layers=door_build_max_layers, max_layers=10_000)
    upgrade_to_head(settings)
    return TestClient(create_app(settings))


def datasets(api: TestClient) -> dict[int, str]:
    ids = {}
    for size in {32, *SMALLEST.values()}:
        x = np.zeros((10, size, size, 3), dtype=np.uint8)
        response = api.post("/v1/datasets", files={"file": (f"i{size}.npz", npz_bytes(x=x, y=np.arange(10)))})
        ids[size] = response.json()["id"]
    return ids


def timed_post(api: TestClient, body: dict[str, Any]) -> tuple[float, int]:
    started = time.perf_counter()
    response = api.post("/v1/jobs", json=body)
    return time.perf_counter() - started, response.status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="MobileNetV3Small,ResNet50,DenseNet121")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    before_names = [n for n in args.before.split(",") if n]
    names = sorted(n for n in dir(keras.applications) if n[:1].isupper())
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        client(Path(tmp) / "a", Settings().door_build_max_layers) as after,
        client(Path(tmp) / "b", 1_000_000) as before,
    ):
        after_sets, before_sets = datasets(after), datasets(before)
        for name in names:
            size = SMALLEST.get(name, 32)
            model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
            config, layers = json.loads(model.to_json()), len(model.layers)
            keras.backend.clear_session()
            body = {"model": {"keras_config": config}, "compile": {"loss": "sparse_categorical_crossentropy"}}
            seconds, status = timed_post(after, {**body, "dataset_id": after_sets[size]})
            old = timed_post(before, {**body, "dataset_id": before_sets[size]}) if name in before_names else None
            rows.append((name, layers, len(json.dumps(config)), seconds, status, old))
            print(name, layers, f"{seconds:.3f}s", status, old, flush=True)
        csv = after.post("/v1/datasets", files={"file": ("d.csv", b"a,b,c,d,label\n1,2,3,4,0\n2,3,4,5,1\n")})
        long_chain = {"model": {"keras_config": chain(5_000)}, "compile": {"loss": "sparse_categorical_crossentropy"}}
        chain_s, chain_status = timed_post(after, {**long_chain, "dataset_id": csv.json()["id"]})
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "d")  # the default layer cap, 2,000
        upgrade_to_head(settings)
        with TestClient(create_app(settings)) as default:
            csv = default.post("/v1/datasets", files={"file": ("d.csv", b"a,b,c,d,label\n1,2,3,4,0\n2,3,4,5,1\n")})
            refused_s, refused_status = timed_post(default, {**long_chain, "dataset_id": csv.json()["id"]})
    write(args.out, rows, (chain_s, chain_status), (refused_s, refused_status))


def write(out: Path, rows: list[Any], chain_result: tuple[float, int], refused: tuple[float, int]) -> None:
    after_times = [r[3] for r in rows]
    lines = [
        f"\n## door — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n",
        f"Machine: {describe('fastapi', 'pydantic')}.",
        "`POST /v1/jobs` with each `keras.applications` model's `to_json()` (weights=None, smallest input, 10 "
        "classes), in process through the whole app (TestClient: body parsing, translation, checks, the job row). "
        f"after = this change (specs over {Settings().door_build_max_layers} layers built by the worker first); "
        "before = every spec built and "
        "dry-run at the door, timed right after the same model's after.\n",
        "| model | layers | config bytes | after s | status | before s | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, layers, size, seconds, status, old in rows:
        old_s, old_status = (f"{old[0]:.2f}", str(old[1])) if old else ("-", "-")
        lines.append(f"| {name} | {layers} | {size:,} | {seconds:.3f} | {status} | {old_s} | {old_status} |")
    lines += [
        "",
        f"after, all {len(rows)}: median {statistics.median(after_times):.3f} s, max {max(after_times):.3f} s "
        f"({rows[after_times.index(max(after_times))][0]}); statuses {sorted({r[4] for r in rows})}.",
        f"A 5,000-layer chain listed last-first (TRAINYARD_MAX_LAYERS=10000): {chain_result[0]:.2f} s, "
        f"status {chain_result[1]}; at the default cap (2,000): {refused[0]:.3f} s, status {refused[1]}.",
    ]
    with out.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
