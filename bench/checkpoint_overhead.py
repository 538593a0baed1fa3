"""What do durable runs cost? Fit throughput of `train()` with and without a RunControl.

Measures, in one process, interleaved round by round (this machine is shared and noisy), the
steady fit throughput (samples/s over the epochs after the first, which pays for tracing) of
an MLP (8 features → Dense 64 relu → Dense 64 relu → Dense 10 softmax, batch 32) on 20k rows:

  * before:        the array path as it was before checkpoints (no per-batch hook at all);
  * arrays:        `train()` without a RunControl (Keras shuffles; the batch counter runs);
  * owned, off:    with a RunControl whose fence says no: our batch order, nothing written;
  * owned, epoch:  checkpoints after every epoch;
  * owned, 1 s:    checkpoints after every epoch and every second inside one;
and what one checkpoint of that model costs to write (the variables as npz, state.json, fsyncs, rename).

    PYTHONPATH=. .venv/bin/python bench/checkpoint_overhead.py [--rows 20000] [--epochs 3] [--rounds 5]
"""

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from app.ml import checkpoints, resume
from app.ml.data import save_arrays
from app.ml.spec import TrainingSpec
from app.ml.training import ProgressCallback, RunControl, train

FEATURES = {"shape": [8], "dtype": "float32"}
TARGET = {"shape": [], "dtype": "int64", "classes": list(range(10)), "n_classes": 10}


class WithoutBatchHook(ProgressCallback):
    """ProgressCallback as it was: no per-batch hook, so Keras may dispatch batch ends async."""

    on_train_batch_end = keras.callbacks.Callback.on_train_batch_end


def spec(epochs: int) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {
                "layers": [
                    {"type": "Dense", "units": 64, "activation": "relu"},
                    {"type": "Dense", "units": 64, "activation": "relu"},
                    {"type": "Dense", "units": 10, "activation": "softmax"},
                ]
            },
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "fit": {"epochs": epochs, "batch_size": 32, "seed": 1},
        }
    )


last_model: Any = None


def write_ms(work: Path, times: int = 20) -> float:
    """Median milliseconds to write one checkpoint of the last trained model."""
    durations = []
    for epoch in range(times):
        # As the Checkpointer writes one: the variables copied, then saved as npz.
        variables = resume._checkpointed_variables(last_model)
        arrays = [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
        files = {checkpoints.WEIGHTS_FILE: functools.partial(resume._save_arrays, arrays=arrays)}
        began = time.perf_counter()
        checkpoints.write_checkpoint(work / "timing", 1, epoch, None, files, {"order": {"seed": 1}})
        durations.append(time.perf_counter() - began)
    return statistics.median(durations) * 1000


def throughput(kind: str, data: Path, work: Path, rows: int, epochs: int) -> float:
    ends: list[float] = []
    progress_class = WithoutBatchHook if kind == "before" else ProgressCallback
    progress = progress_class(lambda epoch, logs: ends.append(time.perf_counter()))
    run = None
    if kind.startswith("owned"):
        every = {"owned, off": 1e9, "owned, epoch": 1e9, "owned, 1 s": 0.5}[kind]
        directory = Path(tempfile.mkdtemp(dir=work))
        run = RunControl(1, directory, every, None, lambda: kind != "owned, off", lambda info: None)
    result = train(spec(epochs), data, FEATURES, TARGET, progress, run)
    global last_model
    last_model = result.model
    return rows * (len(ends) - 1) / (ends[-1] - ends[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    kinds = ["before", "arrays", "owned, off", "owned, epoch", "owned, 1 s"]
    rng = np.random.default_rng(0)
    x = rng.random((args.rows, 8), dtype=np.float32)
    y = np.argmax((x - 0.5) @ np.random.default_rng(1).normal(size=(8, 10)), axis=1).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        data, work = Path(tmp) / "data", Path(tmp) / "work"
        data.mkdir(), work.mkdir()
        save_arrays(data, x, y)
        figures: dict[str, list[float]] = {kind: [] for kind in kinds}
        for round_ in range(args.rounds):
            order = kinds if round_ % 2 == 0 else kinds[::-1]  # neither end always runs first
            for kind in order:
                figures[kind].append(throughput(kind, data, work, args.rows, args.epochs))
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {figures[k][-1]:,.0f}" for k in kinds), flush=True)
        milliseconds = write_ms(work)
    report(figures)
    print(f"one checkpoint written in {milliseconds:.1f} ms (median of 20)")


def report(figures: dict[str, Any]) -> None:
    """Median and best round of each path, and each against `before`. On a shared machine the
    best round is the steadier estimate of what a path costs (other load only ever slows it)."""
    base_median, base_best = statistics.median(figures["before"]), max(figures["before"])
    print(f"\n{'path':<14} {'median':>8} {'ratio':>6} {'best':>8} {'ratio':>6}  samples/s, all rounds")
    for kind, values in figures.items():
        median, best = statistics.median(values), max(values)
        rounds = ", ".join(f"{v:,.0f}" for v in values)
        ratios = f"{median / base_median:>6.3f} {best:>8,.0f} {best / base_best:>6.3f}"
        print(f"{kind:<14} {median:>8,.0f} {ratios}  ({rounds})")


if __name__ == "__main__":
    main()
