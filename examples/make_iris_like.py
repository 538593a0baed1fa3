"""Make an iris-like dataset (no download): three species drawn around iris's class means, and
a text column, `garden`, that has nothing to do with the species.

    python examples/make_iris_like.py      # writes examples/iris_like.csv and examples/iris-explain.json
"""

import csv
import json
from pathlib import Path

import numpy as np

# Per species: the means of sepal length, sepal width, petal length, petal width (cm), and
# their spreads, close to Fisher's iris data.
SPECIES = {
    "setosa": ([5.0, 3.4, 1.5, 0.25], [0.35, 0.38, 0.17, 0.1]),
    "versicolor": ([5.9, 2.8, 4.3, 1.3], [0.5, 0.3, 0.47, 0.2]),
    "virginica": ([6.6, 3.0, 5.6, 2.0], [0.6, 0.3, 0.55, 0.27]),
}
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width", "garden"]


def main(rows_per_species: int = 100, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    out = Path(__file__).parent
    with (out / "iris_like.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*COLUMNS, "species"])
        for species, (mean, spread) in SPECIES.items():
            for row in rng.normal(mean, spread, size=(rows_per_species, 4)):
                writer.writerow([*(f"{v:.1f}" for v in row), rng.choice(["north", "south"]), species])
    flower = {"sepal_length": 6.1, "sepal_width": 2.9, "petal_length": 4.6, "petal_width": 1.4, "garden": "north"}
    (out / "iris-explain.json").write_text(json.dumps({"instances": [flower]}) + "\n")


if __name__ == "__main__":
    main()
