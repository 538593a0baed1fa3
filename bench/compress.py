"""Compression bench: int8, float16 and 50% pruning of a digits-like MLP and a small CNN, through
the worker's own code (app.ml.compression, app.ml.export, app.compress.bill.measure_bill), one run.

Per model and method: serving-artifact size ratio (source bytes / compressed bytes), accuracy
delta in points on held-out rows, and serving-latency ratio (compressed / source, ONNX Runtime
as served: one thread) at 1 and 64 rows. Targets (issue 11): int8 >= 3.5x smaller at <= 1
point loss; prune 50% at <= 1 point loss. Data is made here (8x8 "digits": ten noisy stroke
prototypes, shifted), no downloads.

    PYTHONPATH=$PWD python bench/compress.py [--write]   # --write appends to bench/RESULTS.md
"""

import argparse
import datetime
import gzip
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe

from app.compress.bill import HeldOut, measure_bill
from app.ml import compression, export
from app.ml.training import save_atomically
from app.serving.signature import ServedVersion, TensorSpec

ROWS, CLASSES = 6000, 10


def digits(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 grey images: a random stroke prototype per class, shifted by up to a pixel, with
    pixel noise and dropped strokes (hard enough that a model does not reach 100%)."""
    rng = np.random.default_rng(seed)
    prototypes = (rng.random((CLASSES, 10, 10)) < 0.3).astype(np.float32)
    labels = rng.integers(0, CLASSES, ROWS)
    dx, dy = rng.integers(0, 3, ROWS), rng.integers(0, 3, ROWS)
    images = np.stack([prototypes[c, y : y + 8, x : x + 8] for c, x, y in zip(labels, dx, dy, strict=True)])
    images = images * (rng.random(images.shape) > 0.25) + rng.normal(0, 0.35, images.shape)
    return images.astype(np.float32)[..., None], labels


def mlp() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((64,), name="features"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


def cnn() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


def gzipped(path: Path) -> int:
    """Bytes of the file gzipped: dense storage keeps a pruned file's size, compression sees the zeros."""
    return len(gzip.compress(path.read_bytes()))


def served(path: Path, model: keras.Model, runtime: str) -> ServedVersion:
    signature = export.serving_signature(model)
    return ServedVersion(
        name="bench",
        version=1,
        runtime=runtime,
        path=path,
        inputs=tuple(TensorSpec.of(s) for s in signature["inputs"]),
        outputs=tuple(TensorSpec.of(s) for s in signature["outputs"]),
    )


def run(name: str, build: Callable[[], keras.Model], x: np.ndarray, y: np.ndarray, work: Path) -> list[str]:
    keras.utils.set_random_seed(1)
    n_test = len(x) // 5
    held = HeldOut(x=x[:n_test], y=y[:n_test], labels=y[:n_test], split="test", train_x=x[n_test:], train_y=y[n_test:])
    model = build()  # after the seed: the same weights every run
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(held.train_x, held.train_y, epochs=8, batch_size=64, verbose=0)
    base_dir = work / name / "source"
    save_atomically(model, base_dir / "model.keras")
    exported = export.export_for_serving(model, base_dir / "model.onnx")
    assert exported.path is not None, exported.check
    base = measure_bill(model, served(exported.path, model, "onnx"), base_dir / "model.keras", held)
    rows = [
        f"| {name} | source (float32) | {base.params:,} | {base.artifact_bytes:,} | 1.00x | "
        f"{base.metrics['accuracy'] * 100:.2f} | - | {base.latency_ms.rows_1:.3f} | {base.latency_ms.rows_64:.3f} | - |"
    ]
    for method in ("int8", "float16", "prune"):
        out = work / name / method
        fresh = keras.saving.load_model(base_dir / "model.keras", compile=method == "prune")
        extra = ""
        if method == "prune":
            masks = compression.magnitude_masks(fresh, 0.5)
            compression.apply_masks(fresh, masks)
            fresh.fit(
                held.train_x,
                held.train_y,
                epochs=2,
                batch_size=64,
                verbose=0,
                callbacks=[compression.KeepPruned(masks)],
            )
            save_atomically(fresh, out / "model.keras")
            pruned = export.export_for_serving(fresh, out / "model.onnx")
            assert pruned.path is not None, pruned.check
            zeros, onnx_zeros = compression.kernel_sparsity(fresh), compression.onnx_weight_sparsity(pruned.path)
            packed = gzipped(exported.path) / gzipped(pruned.path)
            extra = (
                f"kernels {zeros:.0%} zero (ONNX {onnx_zeros:.0%}); gzip {packed:.2f}x smaller than the source's gzip"
            )
        else:
            done = compression.quantize_keras_int8(fresh) if method == "int8" else compression.cast_keras_float16(fresh)
            fresh = done.model
            save_atomically(fresh, out / "model.keras")
            calibration = {exported.signature["inputs"][0]["name"]: held.train_x[:256]}
            how = compression.quantize_onnx(method, exported.path, out / "model.onnx", calibration)
            extra = f"{how}; .keras {base.keras_bytes / (out / 'model.keras').stat().st_size:.2f}x smaller"
            if method == "int8":  # what a version without training rows gets (no calibration)
                dynamic = out / "dynamic.onnx"
                compression.quantize_onnx(method, exported.path, dynamic)
                slow = measure_bill(fresh, served(dynamic, fresh, "onnx"), out / "model.keras", held)
                extra += (
                    f"; dynamic int8: {base.artifact_bytes / slow.artifact_bytes:.2f}x smaller, "
                    f"{slow.metrics['accuracy'] * 100:.2f}%, 64 rows {slow.latency_ms.rows_64:.3f} ms"
                )
        bill = measure_bill(fresh, served(out / "model.onnx", fresh, "onnx"), out / "model.keras", held)
        delta = (bill.metrics["accuracy"] - base.metrics["accuracy"]) * 100
        rows.append(
            f"| {name} | {method} | {bill.params:,} | {bill.artifact_bytes:,} | "
            f"{base.artifact_bytes / bill.artifact_bytes:.2f}x | {bill.metrics['accuracy'] * 100:.2f} | {delta:+.2f} | "
            f"{bill.latency_ms.rows_1:.3f} ({bill.latency_ms.rows_1 / base.latency_ms.rows_1:.2f}x) | "
            f"{bill.latency_ms.rows_64:.3f} ({bill.latency_ms.rows_64 / base.latency_ms.rows_64:.2f}x) | {extra} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()
    images, labels = digits()
    header = [
        "| model | method | params | serving bytes | smaller | accuracy % | delta (points) | "
        "1 row ms (vs source) | 64 rows ms (vs source) | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rows = run("digits MLP", mlp, images.reshape(len(images), 64), labels, Path(tmp))
        rows += run("small CNN", cnn, images, labels, Path(tmp))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        "",
        "## Compression (bench/compress.py)",
        "",
        f"{stamp}; {describe('onnxruntime', 'onnx', 'tf2onnx')}.",
        f"Synthetic 8x8 digits, {ROWS} rows, 20% held out; 8 epochs; prune: 50% per kernel, 2 fine-tune epochs.",
        "Sizes are the serving artifact (model.onnx); latency: ONNX Runtime, one thread, median of 30 calls.",
        "",
        *header,
        *rows,
    ]
    print("\n".join(section))
    if args.write:
        with (Path(__file__).parent / "RESULTS.md").open("a") as results:
            results.write("\n".join(section) + "\n")


if __name__ == "__main__":
    main()
