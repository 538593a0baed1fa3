"""NPZ archives: arrays found under their usual names, checked, stored with their statistics."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.datasets.schema import DatasetError
from tests.factories import LIMITS, npz_bytes, store_upload, stored_arrays


@pytest.mark.parametrize(("x_key", "y_key"), [("x", "y"), ("X", "y"), ("features", "labels")])
def test_npz_arrays_are_found_under_their_usual_names(tmp_path: Path, x_key: str, y_key: str) -> None:
    images = np.zeros((5, 8, 8, 1), dtype=np.uint8)
    data = npz_bytes(**{x_key: images, y_key: np.arange(5)})
    stored, directory = store_upload(tmp_path, "d.npz", data)
    assert stored.features == {
        "shape": [8, 8, 1],
        "dtype": "uint8",
        "columns": None,
        "column_types": None,
    }
    assert stored.target["classes"] == [0, 1, 2, 3, 4]
    assert stored_arrays(directory)[0].shape == (5, 8, 8, 1)


def test_npz_statistics_describe_columns_or_the_last_axis(tmp_path: Path) -> None:
    x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32)
    stored, _ = store_upload(tmp_path, "d.npz", npz_bytes(x=x, y=np.array([0.5, 1.5])))
    first, second = stored.stats["features"]
    assert (first["name"], first["mean"], second["max"]) == ("x[:, 0]", 2.0, 30.0)
    assert stored.stats["target"]["columns"][0]["name"] == "y"


def test_npz_object_arrays_are_refused_because_they_need_pickle(tmp_path: Path) -> None:
    data = npz_bytes(x=np.array([{"a": 1}, None], dtype=object), y=np.arange(2))
    with pytest.raises(DatasetError, match="must be numeric"):
        store_upload(tmp_path, "d.npz", data)


def test_npz_row_counts_must_agree(tmp_path: Path) -> None:
    data = npz_bytes(x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DatasetError, match="'x' has 4 rows but 'y' has 3"):
        store_upload(tmp_path, "d.npz", data)


def test_npz_nan_features_are_refused_with_the_row(tmp_path: Path) -> None:
    x = np.zeros((4, 2), dtype=np.float32)
    x[2, 1] = np.nan
    with pytest.raises(DatasetError, match="NaN or infinite values at row 2"):
        store_upload(tmp_path, "d.npz", npz_bytes(x=x, y=np.zeros(4)))


def test_npz_without_rows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'x' has no rows"):
        store_upload(tmp_path, "d.npz", npz_bytes(x=np.zeros((0, 3)), y=np.zeros(0)))


def test_npz_labels_of_one_class_are_refused(tmp_path: Path) -> None:
    data = npz_bytes(x=np.zeros((4, 2)), y=np.full(4, 7))
    with pytest.raises(DatasetError, match=r"array 'y' has a single class \(7\) in all 4 rows"):
        store_upload(tmp_path, "d.npz", data)


def test_npz_with_more_columns_than_the_limit_is_refused(tmp_path: Path) -> None:
    data = npz_bytes(x=np.zeros((2, 9)), y=np.arange(2))
    with pytest.raises(DatasetError, match=r"'x' has 9 columns, over the limit of 8"):
        store_upload(tmp_path, "d.npz", data, limits=replace(LIMITS, max_columns=8))


def test_an_npz_that_unpacks_past_the_limit_is_refused_before_loading(tmp_path: Path) -> None:
    data = npz_bytes(x=np.zeros((1000, 100)), y=np.zeros(1000))
    with pytest.raises(DatasetError, match="over the limit"):
        store_upload(tmp_path, "d.npz", data, limits=replace(LIMITS, max_unpacked_bytes=10_000))
