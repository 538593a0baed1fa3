"""Distillation and gradient health, through the code path a worker runs (app.ml.training.train,
durable, fit.performance auto), on scikit-learn's bundled digits (8x8 images as 64 features, 10
classes; no download).

Measures, in one run on this machine:
  * the teacher (Dense 128 relu, Dense 64 relu, Dense 10 softmax) and a student at under a
    quarter of its parameters (Dense 32 relu, Dense 10 softmax), trained plainly (the baseline)
    and distilled from the teacher: parameters and held-out accuracy (the teacher's test split);
    target: student at <= 25% of the parameters reaching >= 97% of the teacher's accuracy;
  * the cost of gradient health: the teacher's training time with the per-epoch gradient sample
    against the same training with it switched off (median of `--repeats` runs each);
and appends the figures, with date, machine and versions, to bench/RESULTS.md.

    .venv/bin/python bench/distill.py [--epochs 30] [--repeats 3]
"""

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import machine  # bench/machine.py (scripts run from bench/, so it is importable)
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "RESULTS.md"

from app.ml import gradient_health, training  # noqa: E402  (after the path: run as a script)
from app.ml.data import save_arrays  # noqa: E402
from app.ml.run_control import RunControl  # noqa: E402
from app.ml.spec import TrainingSpec  # noqa: E402

FEATURES = {"shape": [64], "dtype": "float32"}
TARGET = {"shape": [], "dtype": "int64", "classes": list(range(10)), "n_classes": 10}
TEACHER = [
    {"type": "Dense", "units": 128, "activation": "relu"},
    {"type": "Dense", "units": 64, "activation": "relu"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]
STUDENT = [
    {"type": "Dense", "units": 32, "activation": "relu"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]


def spec(layers: list[dict[str, Any]], epochs: int, distill: dict[str, Any] | None = None) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {"layers": layers},
            "compile": {
                "optimizer": {"type": "Adam", "learning_rate": 0.003},
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": epochs, "batch_size": 32, "seed": 7, "test_split": 0.2},
            "preprocessing": {"standardize": False},
            "distill": distill,
        }
    )


def run(train_spec: TrainingSpec, data: Path, teacher: Any = None) -> tuple[training.TrainingResult, float]:
    with tempfile.TemporaryDirectory() as checkpoints:
        control = RunControl(1, Path(checkpoints), 1e9, None, lambda: True, lambda _info: None)
        progress = training.ProgressCallback(lambda _epoch, _logs: None)
        began = time.perf_counter()
        result = training.train(train_spec, data, FEATURES, TARGET, progress, control, teacher=teacher)
        return result, time.perf_counter() - began


class _Inert:
    """Stands in for the health callbacks in the baseline runs."""

    def __init__(self) -> None:
        import keras

        self.callbacks = (keras.callbacks.Callback(), keras.callbacks.Callback())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory)
        save_arrays(data, x, y)
        teacher, _ = run(spec(TEACHER, args.epochs), data)
        plain, _ = run(spec(STUDENT, args.epochs), data)
        distill = {"teacher": {"model": "teacher", "version": 1}, "temperature": 4.0, "alpha": 0.1}
        distilled, _ = run(spec(STUDENT, args.epochs, distill), data, teacher=teacher.model)

        # Alternated, so that load on a shared machine drifts over both alike; and the sample's own
        # time inside the runs with it (robust to that drift).
        with_health: list[float] = []
        without: list[float] = []
        sampled: list[float] = []
        original, measured = training._health_callbacks, gradient_health.gradient_health

        def timed(*args: Any) -> tuple[float, float]:
            began = time.perf_counter()
            try:
                return measured(*args)
            finally:
                sampled[-1] += time.perf_counter() - began

        gradient_health.gradient_health = timed  # type: ignore[assignment]
        try:
            for _ in range(args.repeats):
                sampled.append(0.0)
                with_health.append(run(spec(TEACHER, args.epochs), data)[1])
                training._health_callbacks = lambda *_: _Inert().callbacks  # type: ignore[assignment]
                try:
                    without.append(run(spec(TEACHER, args.epochs), data)[1])
                finally:
                    training._health_callbacks = original
        finally:
            gradient_health.gradient_health = measured  # type: ignore[assignment]

    accuracy = {name: r.final_logs["test_accuracy"] for name, r in (("t", teacher), ("p", plain), ("d", distilled))}
    params = {"t": teacher.model.count_params(), "s": distilled.model.count_params()}
    health, baseline = statistics.median(with_health), statistics.median(without)
    lines = [
        "",
        f"## distill — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine.describe('scikit-learn')}. Digits (1,797 rows, 64 features, 10 classes), "
        f"test split 0.2 (seed 7), {args.epochs} epochs, batch 32, Adam 0.003, fit.performance auto, durable path.",
        "",
        "| model | params | share of teacher | test accuracy | share of teacher's |",
        "|---|---:|---:|---:|---:|",
        f"| teacher (128-64-10) | {params['t']:,} | 100% | {accuracy['t']:.4f} | 100% |",
        f"| student (32-10), trained plainly | {params['s']:,} | {params['s'] / params['t']:.1%} | "
        f"{accuracy['p']:.4f} | {accuracy['p'] / accuracy['t']:.1%} |",
        f"| student (32-10), distilled (T=4, alpha=0.1) | {params['s']:,} | {params['s'] / params['t']:.1%} | "
        f"{accuracy['d']:.4f} | {accuracy['d'] / accuracy['t']:.1%} |",
        "",
        f"Gradient health (one sampled batch per epoch), teacher training, {args.repeats} runs each, alternated: "
        f"{health:.2f} s with it, {baseline:.2f} s without (medians; ratio {health / baseline:.3f}); the samples "
        f"themselves took {statistics.median(sampled):.2f} s of each run with it "
        f"({statistics.median(s / t for s, t in zip(sampled, with_health, strict=True)):.1%}, "
        f"{statistics.median(sampled) / args.epochs * 1000:.0f} ms an epoch).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with RESULTS.open("a") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
