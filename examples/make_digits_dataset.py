"""Make a digits-like dataset: 8x8 grey images flattened to 64 columns, 10 classes, as a CSV.

    python examples/make_digits_dataset.py             # writes examples/digits.csv (3000 rows)

Each class is a random stroke prototype (seeded), shifted by up to a pixel, with strokes dropped
and pixel noise: an MLP learns it to about 90%, not 100%, so compression has accuracy to lose.
"""

import argparse
import csv
from pathlib import Path

import numpy as np


def make(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prototypes = (np.random.default_rng(1234).random((10, 10, 10)) < 0.3).astype(np.float32)
    labels = rng.integers(0, 10, rows)
    dx, dy = rng.integers(0, 3, rows), rng.integers(0, 3, rows)
    images = np.stack([prototypes[c, y : y + 8, x : x + 8] for c, x, y in zip(labels, dx, dy, strict=True)])
    images = images * (rng.random(images.shape) > 0.25) + rng.normal(0, 0.35, images.shape)
    return images.reshape(rows, 64).astype(np.float32), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "digits.csv")
    args = parser.parse_args()
    x, y = make(args.rows)
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"p{i}" for i in range(64)] + ["digit"])
        for row, label in zip(x, y, strict=True):
            writer.writerow([f"{v:.3f}" for v in row] + [int(label)])
    print(f"wrote {args.out} ({args.rows} rows)")


if __name__ == "__main__":
    main()
