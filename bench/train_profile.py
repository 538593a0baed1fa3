"""Does `fit.performance: "auto"` train faster than the `model.fit` a user would write?

For each model of the set (the seed MLP at batch 32 and 256, a small CNN on 28x28 images, an
LSTM; with `--size gpu` also the ResNet-ish anchor of ../shared/gpu/keras_anchor.py and the MLP at
batch 1024), in one run on this machine, measures steady fit throughput (samples/s over the epochs
after the first, which pays for tracing and compiling) of:
  (a) plain: the same Keras model, compiled and fit with Keras's defaults in this process;
  (b) off:   the spec as a job with `fit.performance: "off"` through an embedded `trainyard serve`;
  (c) auto:  the same job with `fit.performance: "auto"` (the default);
and appends the figures, the ratios and what auto chose, with date, machine and versions, to
bench/RESULTS.md (or --out).

    .venv/bin/python bench/train_profile.py [--size cpu|gpu|tiny] [--rounds 3] [--models mlp-b32,lstm]

Each round measures (a), (b) and (c) back to back, and a ratio is taken within a round, so a
machine whose speed drifts over minutes (a shared 2-core VM) moves both sides of it. The table
gives each configuration's best round and the median of the rounds' ratios. (a) runs in a fresh
Python process each round, as a user's script would: a job's child process is fresh too (it
imported Keras before the job arrived), and a baseline measured in this long-lived process, which
has already trained other models, is not the same starting point.

Runs anywhere: the embedded service needs no PostgreSQL or Redis. Any KERAS_BACKEND.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import machine  # bench/machine.py (scripts run from bench/, so it is importable)
import numpy as np
from train_overhead import service, steady_throughput

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # app.ml builds the plain model from the same spec
RESULTS = ROOT / "bench" / "RESULTS.md"
COMPILE = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}

SEED_MLP = [
    {"type": "Dense", "units": 64, "activation": "relu"},
    {"type": "Dense", "units": 64, "activation": "relu"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]
CNN = [
    {"type": "Conv2D", "filters": 16, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPooling2D", "pool_size": 2},
    {"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPooling2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]
LSTM = [{"type": "LSTM", "units": 32}, {"type": "Dense", "units": 10, "activation": "softmax"}]


def resnet_ish() -> dict[str, Any]:
    """keras_anchor.py's small ResNet (32x32x3, three stages of two 3x3 convolutions with batch
    norm and a shortcut), as a graph spec: layer for layer the same model."""
    layers: list[dict[str, Any]] = [
        {"name": "stem", "type": "Conv2D", "filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"}
    ]
    previous = "stem"
    for filters in (64, 128, 256):
        stride = 1 if filters == 64 else 2
        n = f"s{filters}"
        layers += [
            {"name": f"{n}_c1", "type": "Conv2D", "filters": filters, "kernel_size": 3, "padding": "same",
             "strides": stride, "inputs": [previous]},
            {"name": f"{n}_b1", "type": "BatchNormalization"},
            {"name": f"{n}_r1", "type": "Activation", "activation": "relu"},
            {"name": f"{n}_c2", "type": "Conv2D", "filters": filters, "kernel_size": 3, "padding": "same"},
            {"name": f"{n}_b2", "type": "BatchNormalization"},
        ]  # fmt: skip
        shortcut = previous
        if filters != 64:
            layers.append(
                {"name": f"{n}_sc", "type": "Conv2D", "filters": filters, "kernel_size": 1, "strides": 2,
                 "inputs": [previous]}
            )  # fmt: skip
            shortcut = f"{n}_sc"
        layers += [
            {"name": f"{n}_add", "type": "Add", "inputs": [f"{n}_b2", shortcut]},
            {"name": f"{n}_out", "type": "Activation", "activation": "relu"},
        ]
        previous = f"{n}_out"
    layers += [
        {"name": "pool", "type": "GlobalAveragePooling2D", "inputs": [previous]},
        {"name": "head", "type": "Dense", "units": 10, "activation": "softmax"},
    ]
    return {"inputs": [{"name": "image"}], "layers": layers, "outputs": ["head"]}


@dataclass
class Work:
    name: str
    model: dict[str, Any]
    shape: tuple[int, ...]  # per sample
    batch: int
    rows: int
    epochs: int


# rows and epochs per size: enough steady epochs to measure, short enough for the machine's budget
SIZES: dict[str, list[Work]] = {
    "tiny": [
        Work("mlp-b32", {"layers": SEED_MLP}, (100,), 32, 1_500, 3),
        Work("cnn-28x28", {"layers": CNN}, (28, 28, 1), 64, 400, 3),
        Work("lstm", {"layers": LSTM}, (20, 8), 64, 400, 3),
        Work("resnet-ish-32x32", resnet_ish(), (32, 32, 3), 64, 256, 3),
    ],
    "cpu": [
        Work("mlp-b32", {"layers": SEED_MLP}, (100,), 32, 20_000, 6),
        Work("mlp-b256", {"layers": SEED_MLP}, (100,), 256, 100_000, 6),
        Work("cnn-28x28", {"layers": CNN}, (28, 28, 1), 64, 6_000, 5),
        Work("lstm", {"layers": LSTM}, (20, 8), 64, 6_000, 5),
    ],
    # GPU: the anchor's ResNet first (the check that matters most is measured even if time runs
    # out), rows a multiple of the batch (a short last batch is one more XLA compile per process).
    "gpu": [
        Work("resnet-ish-32x32", resnet_ish(), (32, 32, 3), 256, 80 * 256, 4),
        Work("mlp-b32", {"layers": SEED_MLP}, (100,), 32, 3125 * 32, 4),
        Work("mlp-b1024", {"layers": SEED_MLP}, (100,), 1024, 400 * 1024, 4),
        Work("cnn-28x28", {"layers": CNN}, (28, 28, 1), 256, 120 * 256, 4),
        Work("lstm", {"layers": LSTM}, (20, 8), 256, 120 * 256, 4),
        Work("mlp-b256", {"layers": SEED_MLP}, (100,), 256, 800 * 256, 4),
    ],
}


def make_data(work: Work, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random features and a label a model can learn (a fixed projection's argmax)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((work.rows, *work.shape), dtype=np.float32)
    flat = x.reshape(len(x), -1)
    weights = np.random.default_rng(1234).normal(size=(flat.shape[1], 10)).astype(np.float32)
    return x, np.argmax(flat @ weights, axis=1).astype(np.int64)


def spec_of(work: Work, performance: str) -> dict[str, Any]:
    fit = {"epochs": work.epochs, "batch_size": work.batch, "seed": 1, "performance": performance}
    return {"model": work.model, "compile": COMPILE, "fit": fit}


# --- (a) plain Keras -----------------------------------------------------------------------------


def plain_throughput(size: str, work: Work, data: Path) -> float:
    """(a) in a fresh Python process: `--size SIZE --plain NAME --data FILE` below."""
    command = [sys.executable, __file__, "--size", size, "--plain", work.name, "--data", str(data)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["plain_samples_s"])


def fit_plainly(work: Work, x: np.ndarray, y: np.ndarray) -> float:
    """The model a user would write, fit with Keras's defaults (the builder only translates the
    spec into the same Keras layers; compile and fit are Keras's, with no arguments of ours)."""
    import keras

    from app.ml.builder import build_model
    from app.ml.spec import TrainingSpec

    spec = TrainingSpec.model_validate(spec_of(work, "off"))
    name = spec.model.inputs[0].name if hasattr(spec.model, "inputs") else "features"
    model = build_model(spec, {name: work.shape}).model
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ends: list[float] = []
    timer = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: ends.append(time.perf_counter()))
    model.fit(x, y, epochs=work.epochs, batch_size=work.batch, verbose=0, callbacks=[timer])
    return steady_throughput(len(x), ends)


# --- (b, c) jobs ---------------------------------------------------------------------------------


def upload_npz(svc: Any, path: Path) -> str:
    with path.open("rb") as handle:
        response = svc.http.post("/v1/datasets", files={"file": (path.name, handle)}, timeout=600)
    response.raise_for_status()
    return str(response.json()["id"])


def job_throughput(svc: Any, dataset_id: str, work: Work, performance: str) -> tuple[float, dict[str, Any]]:
    children = svc.warm_children()
    body = {"dataset_id": dataset_id, **spec_of(work, performance)}
    response = svc.http.post("/v1/jobs", json=body)
    response.raise_for_status()
    job = svc.wait_final(str(response.json()["id"]), timeout=1800)
    svc.wait_warm(children + 1)  # the next child imports Keras before anything else is measured
    if job["status"] != "succeeded":
        # Print the job's own log: on a lent machine it is lost with the machine otherwise.
        tail = svc.http.get(f"/v1/jobs/{job['id']}/logs").text.splitlines()[-60:]
        print(f"job {job['id']} ({work.name}, {performance}) {job['status']}: {job.get('error')}", flush=True)
        print("\n".join(tail), flush=True)
        raise JobFailed(f"{job['status']}: {job.get('error')}")
    epochs = svc.http.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    ends = [datetime.fromisoformat(e["finished_at"]).timestamp() for e in epochs]
    return steady_throughput(work.rows, ends), job.get("performance") or {}


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median over rounds of each round's ratio."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


class JobFailed(RuntimeError):
    """A benchmark job did not succeed (its log was printed): the model's row says so."""


def chosen(record: dict[str, Any]) -> str:
    if not record:
        return "(not recorded)"
    return (
        f"spe {record['steps_per_execution']['value']}, jit {record['jit_compile']['value']}, "
        f"{record['dtype_policy']['value']}, data {record['data_placement']['value']}"
        + (", fused" if (record.get("fused_steps") or {}).get("value") else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="repeats of a, b, c in turn; ratios are per round")
    parser.add_argument("--models", help="comma-separated names (default: all of the size)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file the section is appended to")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--plain", metavar="NAME", help=argparse.SUPPRESS)  # (a) in this process, then exit
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    works = [w for w in SIZES[args.size] if not args.models or w.name in args.models.split(",")]
    if args.plain:
        work = next(w for w in SIZES[args.size] if w.name == args.plain)
        with np.load(args.data) as arrays:
            rate = fit_plainly(work, arrays["x"], arrays["y"])
        print(json.dumps({"plain_samples_s": rate}))
        return

    results: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="trainyard-profile-") as tmp:
        workdir = Path(tmp)
        with service("embedded", workdir) as svc:
            for work in works:
                x, y = make_data(work)
                path = workdir / f"{work.name}.npz"
                np.savez(path, x=x, y=y)
                dataset_id = upload_npz(svc, path)
                figures: dict[str, list[float]] = {"plain": [], "off": [], "auto": []}
                record: dict[str, Any] = {}
                failed = ""
                for _ in range(args.rounds):  # alternate, the service idle during the baseline
                    figures["plain"].append(plain_throughput(args.size, work, path))
                    try:
                        figures["off"].append(job_throughput(svc, dataset_id, work, "off")[0])
                        rate, record = job_throughput(svc, dataset_id, work, "auto")
                        figures["auto"].append(rate)
                    except JobFailed as exc:  # the other models are still measured
                        failed = str(exc)
                        break
                path.unlink()
                if failed:
                    print(json.dumps({"model": work.name, "failed": failed}), flush=True)
                    results.append({"model": work.name, "batch": work.batch, "failed": failed})
                    continue
                best = {k: max(v) for k, v in figures.items()}
                row = {
                    "model": work.name, "batch": work.batch, "rows": work.rows, "epochs": work.epochs,
                    **{f"{k}_samples_s": round(v) for k, v in best.items()},
                    "off_over_plain": round(median_ratio(figures["off"], figures["plain"]), 3),
                    "auto_over_plain": round(median_ratio(figures["auto"], figures["plain"]), 3),
                    "all_rounds": figures, "auto_chose": record,
                }  # fmt: skip
                results.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "auto_chose"}), flush=True)
                if args.json:  # after every model: a run cut short keeps what it measured
                    args.json.write_text(json.dumps(results, indent=1))
                print(f"  auto chose: {chosen(record)}", flush=True)

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    table = [
        f"| {r['model']} | {r['batch']} | - | - | - | - | - | a job failed: {r['failed'][:200]} |"
        if "failed" in r
        else f"| {r['model']} | {r['batch']} | {r['plain_samples_s']:,} | {r['off_samples_s']:,} | "
        f"{r['auto_samples_s']:,} | {r['off_over_plain']:.2f} | **{r['auto_over_plain']:.2f}** | "
        f"{chosen(r['auto_chose'])} |"
        for r in results
    ]
    section = [
        f"## train_profile ({args.size}) — {stamp}",
        "",
        f"Machine: {machine.describe('jax', 'jaxlib', 'fastapi')}; load average {load:.1f} at the end.",
        f"Steady fit throughput (samples/s over the epochs after the first) in {args.rounds} rounds of: (a) plain "
        "Keras `model.fit` defaults in a fresh Python process, (b) a job with "
        '`fit.performance: "off"`, (c) the same job with `"auto"`, both through an embedded `trainyard serve`. '
        "Throughputs: each one's best round; ratios: the median of the rounds' own ratios. "
        f"Run took {time.monotonic() - started:.0f} s.",
        "",
        "| model | batch | plain | off | auto | off / plain | auto / plain | auto chose |",
        "|---|---|---|---|---|---|---|---|",
        *table,
        "",
    ]
    print("\n".join(section), flush=True)
    previous = args.out.read_text() if args.out.exists() else "# Benchmark results\n\n"
    args.out.write_text(previous.rstrip("\n") + "\n\n" + "\n".join(section))
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
