"""Parsing uploads into arrays: schemas recorded, and bad files named by line and column."""

from pathlib import Path

import numpy as np
import pytest

from app.datasets.parsing import DatasetError, detect_format, parse_csv, parse_npz
from tests.factories import csv_bytes, npz_bytes

LIMIT = 10**9


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_numeric_csv_becomes_float_features_and_integer_classes(tmp_path: Path) -> None:
    parsed = parse_csv(write(tmp_path, "d.csv", csv_bytes(rows=20, features=4, classes=3)), target=None)
    assert parsed.x.shape == (20, 4) and parsed.x.dtype == np.float32
    assert parsed.features == {
        "shape": [4],
        "dtype": "float32",
        "columns": ["f0", "f1", "f2", "f3"],
    }
    assert parsed.target["columns"] == ["label"] and parsed.target["n_classes"] == 3
    assert parsed.y.dtype == np.int64


def test_string_labels_are_encoded_and_their_names_kept(tmp_path: Path) -> None:
    data = csv_bytes(rows=30, classes=3, labels=["setosa", "versicolor", "virginica"])
    parsed = parse_csv(write(tmp_path, "iris.csv", data), target="label")
    assert parsed.target["classes"] == ["setosa", "versicolor", "virginica"]
    assert set(parsed.y.tolist()) <= {0, 1, 2}


def test_a_chosen_target_column_is_taken_out_of_the_features(tmp_path: Path) -> None:
    parsed = parse_csv(write(tmp_path, "d.csv", b"a,price,b\n1,10.5,2\n3,11.5,4\n"), target="price")
    assert parsed.features["columns"] == ["a", "b"]
    assert parsed.target["classes"] is None and parsed.y.tolist() == [10.5, 11.5]


def test_a_ragged_row_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"a,b,label\n1,2,0\n3,4,1\n5,6,7,8\n")
    with pytest.raises(DatasetError, match=r"line 4 has 4 fields but the header has 3"):
        parse_csv(path, target=None)


def test_an_empty_cell_names_its_column_and_row(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"a,b,label\n1,2,0\n3,,1\n")
    with pytest.raises(DatasetError, match=r"column 'b' has an empty or NaN value at data row 2 \(line 3"):
        parse_csv(path, target=None)


def test_a_text_feature_column_names_the_first_offending_value(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"a,colour,label\n1,2,0\n3,red,1\n")
    with pytest.raises(DatasetError, match=r"column 'colour' holds text \(data row 2 \(line 3\): 'red'\)"):
        parse_csv(path, target=None)


def test_non_utf8_text_is_reported_as_an_encoding_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"a,b,label\n1,x\xff,0\n")
    with pytest.raises(DatasetError, match="not valid UTF-8"):
        parse_csv(path, target=None)


def test_an_unknown_target_lists_the_columns_there_are(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"a,b,label\n1,2,0\n")
    with pytest.raises(DatasetError, match=r"target column 'y' is not in the header; columns are: a, b, label"):
        parse_csv(path, target="y")


def test_a_header_without_rows_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no data rows"):
        parse_csv(write(tmp_path, "d.csv", b"a,b,label\n"), target=None)


@pytest.mark.parametrize(("x_key", "y_key"), [("x", "y"), ("X", "y"), ("features", "labels")])
def test_npz_arrays_are_found_under_their_usual_names(tmp_path: Path, x_key: str, y_key: str) -> None:
    images = np.zeros((5, 8, 8, 1), dtype=np.uint8)
    data = npz_bytes(**{x_key: images, y_key: np.arange(5)})
    parsed = parse_npz(write(tmp_path, "d.npz", data), LIMIT)
    assert parsed.features == {"shape": [8, 8, 1], "dtype": "uint8", "columns": None}
    assert parsed.target["classes"] == [0, 1, 2, 3, 4]


def test_npz_object_arrays_are_refused_because_they_need_pickle(tmp_path: Path) -> None:
    data = npz_bytes(x=np.array([{"a": 1}, None], dtype=object), y=np.arange(2))
    with pytest.raises(DatasetError, match="cannot load safely"):
        parse_npz(write(tmp_path, "d.npz", data), LIMIT)


def test_npz_row_counts_must_agree(tmp_path: Path) -> None:
    data = npz_bytes(x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DatasetError, match="'x' has 4 rows but 'y' has 3"):
        parse_npz(write(tmp_path, "d.npz", data), LIMIT)


def test_npz_nan_features_are_refused_with_the_row(tmp_path: Path) -> None:
    x = np.zeros((4, 2), dtype=np.float32)
    x[2, 1] = np.nan
    with pytest.raises(DatasetError, match="NaN or infinite values at row 2"):
        parse_npz(write(tmp_path, "d.npz", npz_bytes(x=x, y=np.zeros(4))), LIMIT)


def test_an_npz_that_unpacks_past_the_limit_is_refused_before_loading(tmp_path: Path) -> None:
    data = npz_bytes(x=np.zeros((1000, 100)), y=np.zeros(1000))
    with pytest.raises(DatasetError, match="over the limit"):
        parse_npz(write(tmp_path, "d.npz", data), max_unpacked_bytes=10_000)


def test_formats_come_from_the_extension_or_the_form_field() -> None:
    assert detect_format("data.CSV", None) == "csv"
    assert detect_format("blob.bin", "npz") == "npz"
    with pytest.raises(DatasetError, match="unsupported format 'h5'"):
        detect_format("model.h5", None)
