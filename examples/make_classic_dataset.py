"""Make the dataset of the textbook Keras example: 100 features, 10 classes, as a CSV.

    python examples/make_classic_dataset.py            # writes examples/classic.csv
    python examples/make_classic_dataset.py --rows 5000 --out /tmp/classic.csv

It also writes `<out stem>-predict.json`: a TF Serving predict body with two fresh rows.

The label is a fixed (seeded) linear function of the features, so the MLP has something to
learn and its accuracy rises over the epochs.
"""

import argparse
import csv
import json
from pathlib import Path

import numpy as np


def make(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 100), dtype=np.float32)
    weights = np.random.default_rng(1234).normal(size=(100, 10)).astype(np.float32)
    y = np.argmax((x - 0.5) @ weights, axis=1)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("classic.csv"))
    args = parser.parse_args()
    x, y = make(args.rows)
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i}" for i in range(x.shape[1])] + ["label"])
        for features, label in zip(x, y, strict=True):
            writer.writerow([f"{v:.5f}" for v in features] + [int(label)])
    fresh, _ = make(2, seed=1)
    predict_body = args.out.with_name(f"{args.out.stem}-predict.json")
    instances = [[round(float(v), 5) for v in row] for row in fresh]
    predict_body.write_text(json.dumps({"instances": instances}))
    print(f"wrote {args.rows} rows to {args.out} and a predict request to {predict_body}")


if __name__ == "__main__":
    main()
