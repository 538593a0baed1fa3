"""Summary statistics, accumulated block by block while a dataset is stored.

The figures describe the stored values (what a model sees): categorical columns as their codes,
images as their uint8 pixels per channel.
"""

from typing import Any

import numpy as np

CHUNK_VALUES = 1 << 20  # float64 temporaries of at most 8 MiB per update step


class RunningStats:
    """Count, mean, variance, min and max per column, merged block by block in float64.

    Blocks are combined with Chan et al.'s pairwise update, which stays accurate where a running
    sum of squares would cancel catastrophically. Missing values (NaN) are skipped and counted.
    """

    def __init__(self, width: int) -> None:
        self.count = np.zeros(width)
        self.missing = np.zeros(width, dtype=np.int64)
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)
        self.minimum = np.full(width, np.inf)
        self.maximum = np.full(width, -np.inf)

    def update(self, block: np.ndarray) -> None:
        """Add a (rows, width) block, in slices that keep float64 temporaries small."""
        step = max(1, CHUNK_VALUES // max(1, block.shape[1]))
        for start in range(0, block.shape[0], step):
            self._merge(block[start : start + step])

    def _merge(self, block: np.ndarray) -> None:
        if block.shape[0] == 0:
            return
        missing = np.isnan(block) if block.dtype.kind == "f" else None
        if missing is not None and missing.any():
            self.missing += missing.sum(axis=0)
            self._merge_present(block, ~missing)
            return
        rows = np.full(block.shape[1], float(block.shape[0]))
        block_mean = block.mean(axis=0, dtype=np.float64)
        block_m2 = ((block - block_mean) ** 2).sum(axis=0, dtype=np.float64)
        self._combine(rows, block_mean, block_m2, block.min(axis=0), block.max(axis=0))

    def _merge_present(self, block: np.ndarray, present: np.ndarray) -> None:
        rows = present.sum(axis=0).astype(np.float64)
        filled = np.where(present, block, 0.0)
        block_mean = np.divide(filled.sum(axis=0, dtype=np.float64), rows, out=np.zeros_like(rows), where=rows > 0)
        block_m2 = np.where(present, (block - block_mean) ** 2, 0.0).sum(axis=0, dtype=np.float64)
        low = np.where(present, block, np.inf).min(axis=0)
        high = np.where(present, block, -np.inf).max(axis=0)
        self._combine(rows, block_mean, block_m2, low, high)

    def _combine(
        self, rows: np.ndarray, block_mean: np.ndarray, block_m2: np.ndarray, low: np.ndarray, high: np.ndarray
    ) -> None:
        total = self.count + rows
        share = np.divide(rows, total, out=np.zeros_like(rows), where=total > 0)
        delta = block_mean - self.mean
        self.mean += delta * share
        self.m2 += block_m2 + delta**2 * self.count * share
        self.count = total
        np.minimum(self.minimum, low, out=self.minimum)
        np.maximum(self.maximum, high, out=self.maximum)

    def summary(self, index: int) -> dict[str, float]:
        return {
            "min": float(self.minimum[index]),
            "max": float(self.maximum[index]),
            "mean": float(self.mean[index]),
            "std": float(np.sqrt(self.m2[index] / self.count[index])) if self.count[index] else 0.0,
        }


def numeric_entry(name: str, summary: dict[str, float], missing: int = 0) -> dict[str, Any]:
    return {"name": name, "kind": "numeric", **summary, "missing": int(missing)}


def categorical_entry(name: str, counts: np.ndarray, missing: int) -> dict[str, Any]:
    """Statistics of a column stored as codes 0..k-1, from how often each code occurs."""
    codes = np.arange(len(counts), dtype=np.float64)
    total = counts.sum()
    mean = float((codes * counts).sum() / total)
    present = np.flatnonzero(counts)
    return {
        "name": name,
        "kind": "categorical",
        "min": float(present.min()),
        "max": float(present.max()),
        "mean": mean,
        "std": float(np.sqrt(((codes - mean) ** 2 * counts).sum() / total)),
        "missing": int(missing),
        "counts": [int(c) for c in counts],
    }


def classification_stats(classes: list[Any], counts: np.ndarray) -> dict[str, Any]:
    """`counts[i]` rows have class index i (text classes) or label i (integer classes)."""
    if classes and isinstance(classes[0], str):
        histogram = {name: int(counts[i]) for i, name in enumerate(classes)}
    else:
        histogram = {str(label): int(counts[label]) for label in classes}
    return {"kind": "classification", "histogram": histogram}


def regression_stats(names: list[str], running: RunningStats) -> dict[str, Any]:
    columns = [numeric_entry(name, running.summary(i)) for i, name in enumerate(names)]
    return {"kind": "regression", "columns": columns}


def axis_names(shape: list[int], array: str = "x") -> list[str]:
    """Names of the slices that per-column statistics describe when there is no header:
    the columns of a 2-D array, the last axis (an image's channels) of a deeper one."""
    if not shape:
        return [array]
    if len(shape) == 1:
        return [f"{array}[:, {i}]" for i in range(shape[0])]
    return [f"{array}[..., {i}]" for i in range(shape[-1])]
