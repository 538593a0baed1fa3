"""Whole dataset rows → each graph input, inside the model, with built-in layers only.

Column selection is a frozen 0/1 Dense, categories are `CategoryEncoding` one-hots, and
standardization is a `Normalization` adapted on the training rows: all of Keras's own layers,
so the saved model still loads with `safe_mode` (a Lambda or a custom layer would not) and
predict takes the same rows the dataset had.
"""

from typing import Any

import keras
import numpy as np

from app.ml.data import TabularInputs


def encode_rows(tabular: TabularInputs) -> tuple[Any, dict[str, Any], list[tuple[keras.layers.Layer, Any]]]:
    """The model's one input (`features`), each graph input's node, and the layers to adapt."""
    rows = keras.Input(shape=(tabular.n_features,), name="features")
    nodes: dict[str, Any] = {}
    to_adapt: list[tuple[keras.layers.Layer, Any]] = []
    for name, indexes in tabular.indexes.items():
        numeric = [i for i in indexes if i not in tabular.category_sizes]
        parts = []
        if numeric:
            part = (
                rows
                if numeric == list(range(tabular.n_features))
                else select_columns(rows, f"{name}_numeric", numeric, tabular.n_features)
            )
            if tabular.standardize:
                standardize = keras.layers.Normalization(name=f"{name}_standardize")
                to_adapt.append((standardize, part))
                part = standardize(part)
            parts.append(part)
        for index in indexes:
            if index in tabular.category_sizes:
                code = select_columns(rows, f"{name}_column_{index}", [index], tabular.n_features)
                one_hot = keras.layers.CategoryEncoding(
                    num_tokens=tabular.category_sizes[index],
                    output_mode="one_hot",
                    name=f"{name}_column_{index}_one_hot",
                )
                parts.append(one_hot(code))
        nodes[name] = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name=f"{name}_encoded")(parts)
    return rows, nodes, to_adapt


def select_columns(rows: Any, name: str, indexes: list[int], n_features: int) -> Any:
    """A frozen 0/1 Dense that picks `indexes` out of a row."""
    selector = keras.layers.Dense(len(indexes), use_bias=False, trainable=False, name=name)
    selected = selector(rows)
    matrix = np.zeros((n_features, len(indexes)), dtype="float32")
    matrix[indexes, range(len(indexes))] = 1.0
    selector.set_weights([matrix])
    return selected
