"""How much of a step group does Keras's own step loop cost, against a fused group (app.ml.fused)?

In one process, on the running KERAS_BACKEND, the seed MLP at batch 32 (or --batch) trained on
rows on the device, in groups of --steps batches, alternating each round between:
  (a) keras: Keras's step loop, fed batch by batch by our device feed (what an unfused `auto`
      job with rows on the device runs);
  (b) fused: the same groups as one compiled loop each (`fit.fused_steps`);
and the time per step of each, the median ratio over rounds, appended to bench/RESULTS.md.

    .venv/bin/python bench/fused_steps.py [--rounds 5] [--steps 128] [--batch 32]
"""

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import keras
import machine  # bench/machine.py (scripts run from bench/, so it is importable)
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.ml import feeding, fused
from app.ml.resume import EpochOrder

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
ROWS, FEATURES, CLASSES = 20_000, 100, 10


def seed_mlp() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=True)
    return model


def epoch_seconds(model: keras.Model, arguments: dict) -> float:
    started = time.perf_counter()
    model.fit(**arguments, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=128, help="batches per group")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, ROWS)
    order = EpochOrder(ROWS, args.batch, seed=0, shuffle=True)
    feed, _ = feeding.make_feed("device", order, x, y, None)
    grouping = fused.Grouping(order, args.steps)
    steps = order.batches_per_epoch

    kerass, ours = seed_mlp(), seed_mlp()
    kerass.steps_per_execution = args.steps
    # Warm up: trace and compile both, and build the metrics in Keras's loop first (a fused
    # group needs them built; a job's probe does this).
    ours.fit(**feed.train_args(0, 0, 2), epochs=1, verbose=0)
    fused.install(ours, feed.device_rows, grouping, jit_compile=True)
    for model, arguments in ((kerass, feed.train_args(0, 0, None)), (ours, feed.group_args(grouping, 0, 0))):
        epoch_seconds(model, arguments)

    per_step: dict[str, list[float]] = {"keras": [], "fused": []}
    for round_ in range(args.rounds):
        epoch = round_ + 1
        per_step["keras"].append(epoch_seconds(kerass, feed.train_args(epoch, 0, None)) / steps)
        per_step["fused"].append(epoch_seconds(ours, feed.group_args(grouping, epoch, 0)) / steps)
        print(
            f"round {round_ + 1}: keras {per_step['keras'][-1] * 1e3:.3f} ms/step, "
            f"fused {per_step['fused'][-1] * 1e3:.3f} ms/step",
            flush=True,
        )
    ratios = [k / f for k, f in zip(per_step["keras"], per_step["fused"], strict=True)]
    best = {name: min(times) for name, times in per_step.items()}
    section = "\n".join(
        [
            f"## fused_steps ({keras.backend.backend()}) — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"Machine: {machine.describe()}.",
            f"The seed MLP at batch {args.batch}, {ROWS:,} rows on the device, groups of {args.steps} batches, "
            f"{steps} steps an epoch, in one process, {args.rounds} alternating rounds: (a) Keras's own step loop "
            "fed by our device feed, (b) the same groups fused (app/ml/fused.py).",
            "",
            "| | best ms/step | best samples/s |",
            "|---|---|---|",
            *(f"| {name} | {seconds * 1e3:.3f} | {args.batch / seconds:,.0f} |" for name, seconds in best.items()),
            "",
            f"keras / fused time per step: median **{statistics.median(ratios):.2f}x** "
            f"(rounds {min(ratios):.2f}-{max(ratios):.2f}).",
            "",
        ]
    )
    print(section)
    with args.out.open("a") as out:
        out.write("\n" + section)


if __name__ == "__main__":
    main()
