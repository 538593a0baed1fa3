"""Look into a stored dataset: its first rows as the user wrote them, and summary statistics.

Both read the stored arrays memory-mapped, never the whole file. Statistics are computed at
ingest; datasets stored before that are summarised here, once, from their arrays.
"""

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from app.datasets.stats import (
    RunningStats,
    axis_names,
    classification_stats,
    numeric_entry,
    regression_stats,
)
from app.ml.data import FEATURES_FILE, TARGET_FILE

STATS_CHUNK_ROWS = 65_536


def open_arrays(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    x = np.load(directory / FEATURES_FILE, mmap_mode="r", allow_pickle=False)
    y = np.load(directory / TARGET_FILE, mmap_mode="r", allow_pickle=False)
    return x, y


def preview_rows(directory: Path, features: dict[str, Any], target: dict[str, Any], rows: int) -> dict[str, Any]:
    """The first `rows` rows. Tabular data comes back as a table with the original category
    strings and class names; arrays and images as their shape and the rows' targets."""
    x, y = open_arrays(directory)
    count = min(rows, x.shape[0])
    targets = decode_targets(y[:count], target)
    columns = features.get("columns")
    if not columns:
        return {"columns": None, "rows": None, "shape": features["shape"], "targets": targets}
    table = plain_numbers(x[:count])
    for j, column in enumerate(features.get("column_types") or []):
        vocabulary = column.get("vocabulary")
        if vocabulary is not None:
            for row in table:
                row[j] = vocabulary[int(row[j])]
    target_columns = target.get("columns") or ["target"]
    if len(target_columns) == 1:
        table = [[*row, label] for row, label in zip(table, targets, strict=True)]
    else:
        table = [[*row, *labels] for row, labels in zip(table, targets, strict=True)]
    return {
        "columns": [*columns, *target_columns],
        "rows": table,
        "shape": features["shape"],
        "targets": None,
    }


def decode_targets(y: np.ndarray, target: dict[str, Any]) -> list[Any]:
    classes = target.get("classes")
    if classes and isinstance(classes[0], str):
        return [classes[int(i)] for i in y]
    return plain_numbers(y)


def plain_numbers(array: np.ndarray) -> list[Any]:
    """Numbers as JSON-ready Python values, float32 written the short way (0.1, not
    0.10000000149011612) as orjson does."""
    data = orjson.dumps(np.ascontiguousarray(array), option=orjson.OPT_SERIALIZE_NUMPY)
    values: list[Any] = orjson.loads(data)
    return values


def stats_from_arrays(directory: Path, features: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Statistics of a dataset stored before they were computed at ingest (numeric features)."""
    x, y = open_arrays(directory)
    width = x.shape[-1] if x.ndim > 1 else 1
    running = RunningStats(width)
    for start in range(0, x.shape[0], STATS_CHUNK_ROWS):
        running.update(np.asarray(x[start : start + STATS_CHUNK_ROWS]).reshape(-1, width))
    names = features.get("columns") or axis_names(list(x.shape[1:]))
    feature_stats = [numeric_entry(name, running.summary(i)) for i, name in enumerate(names)]

    classes = target.get("classes")
    if classes is not None:
        counts = np.zeros(int(target["n_classes"]), dtype=np.int64)
        for start in range(0, y.shape[0], STATS_CHUNK_ROWS):
            chunk = np.asarray(y[start : start + STATS_CHUNK_ROWS], dtype=np.int64)
            counts += np.bincount(chunk, minlength=len(counts))
        return {"features": feature_stats, "target": classification_stats(classes, counts)}
    width = y.shape[-1] if y.ndim > 1 else 1
    running = RunningStats(width)
    for start in range(0, y.shape[0], STATS_CHUNK_ROWS):
        running.update(np.asarray(y[start : start + STATS_CHUNK_ROWS]).reshape(-1, width))
    target_names = target.get("columns") or axis_names(list(y.shape[1:]), "y")
    return {"features": feature_stats, "target": regression_stats(target_names, running)}
