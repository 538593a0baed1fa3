"""Statistics merged block by block agree with numpy on the whole array."""

import numpy as np
import pytest

from app.datasets.stats import RunningStats, categorical_entry


def test_running_statistics_match_numpy_over_uneven_blocks() -> None:
    data = np.random.default_rng(3).normal(loc=1e4, scale=2.0, size=(1000, 3))
    running = RunningStats(3)
    for start, stop in [(0, 1), (1, 400), (400, 999), (999, 1000)]:
        running.update(data[start:stop])
    for column in range(3):
        summary = running.summary(column)
        assert summary["mean"] == pytest.approx(data[:, column].mean())
        assert summary["std"] == pytest.approx(data[:, column].std())
        assert (summary["min"], summary["max"]) == (data[:, column].min(), data[:, column].max())


def test_categorical_statistics_come_from_code_counts() -> None:
    entry = categorical_entry("colour", np.array([2, 0, 1]), missing=1)
    codes = np.array([0, 0, 2])
    assert entry["mean"] == pytest.approx(codes.mean()) and entry["std"] == pytest.approx(codes.std())
    assert (entry["min"], entry["max"], entry["missing"]) == (0, 2, 1)
