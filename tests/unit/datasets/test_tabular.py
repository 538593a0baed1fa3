"""CSV, Parquet and JSON Lines into stored arrays: one path, schemas, categories, bad data named."""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.datasets.schema import DatasetError
from tests.factories import (
    LIMITS,
    csv_bytes,
    csv_from_columns,
    jsonl_bytes,
    mixed_columns,
    parquet_bytes,
    store_upload,
    stored_arrays,
)

ENCODERS = {"csv": csv_from_columns, "parquet": parquet_bytes, "jsonl": jsonl_bytes}


def test_a_numeric_csv_becomes_float_features_and_integer_classes(tmp_path: Path) -> None:
    stored, directory = store_upload(tmp_path, "d.csv", csv_bytes(rows=20, features=4))
    x, y = stored_arrays(directory)
    assert x.shape == (20, 4) and x.dtype == np.float32 and y.dtype == np.int64
    assert {k: stored.features[k] for k in ("shape", "dtype", "columns")} == {
        "shape": [4],
        "dtype": "float32",
        "columns": ["f0", "f1", "f2", "f3"],
    }
    assert stored.features["column_types"][0] == {
        "name": "f0",
        "kind": "numeric",
        "vocabulary": None,
    }
    assert stored.target["columns"] == ["label"] and stored.target["n_classes"] == 3


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_every_tabular_format_stores_text_features_as_sorted_category_codes(tmp_path: Path, fmt: str) -> None:
    stored, directory = store_upload(tmp_path, f"pets.{fmt}", ENCODERS[fmt](mixed_columns()))
    x, y = stored_arrays(directory)
    colour = stored.features["column_types"][1]
    assert colour == {
        "name": "colour",
        "kind": "categorical",
        "vocabulary": ["blue", "green", "red", None],
    }
    assert x[:, 1].tolist() == [2, 0, 3, 2, 1, 0]  # red, blue, (missing), red, green, blue
    assert x[:, 0].tolist() == [1.5, 2.0, 3.25, 4.0, 5.5, 6.0]
    assert stored.target["classes"] == ["cat", "dog"] and y.tolist() == [0, 1, 0, 1, 0, 0]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_statistics_are_computed_while_storing(tmp_path: Path, fmt: str) -> None:
    stored, _ = store_upload(tmp_path, f"pets.{fmt}", ENCODERS[fmt](mixed_columns()))
    size, colour = stored.stats["features"]
    values = np.array(mixed_columns()["size"])
    assert size["min"] == 1.5 and size["max"] == 6.0 and size["missing"] == 0
    assert size["mean"] == pytest.approx(values.mean())
    assert size["std"] == pytest.approx(values.std())
    assert colour["missing"] == 1 and colour["counts"] == [2, 1, 2, 1]
    assert stored.stats["target"] == {"kind": "classification", "histogram": {"cat": 4, "dog": 2}}


def test_delimiter_and_quoting_are_detected(tmp_path: Path) -> None:
    data = b'name;score;label\n"Smith; J.";1,5;a\n"O""Neil\nsecond line";2;b\nPlain;3;a\n'
    stored, directory = store_upload(tmp_path, "d.csv", data)
    x, _ = stored_arrays(directory)
    assert stored.features["column_types"][0]["vocabulary"] == [
        'O"Neil\nsecond line',
        "Plain",
        "Smith; J.",
    ]
    assert x[:, 0].tolist() == [2, 0, 1]


@pytest.mark.parametrize("delimiter", ["\t", "|", ";"])
def test_tab_pipe_and_semicolon_files_parse_like_comma_files(tmp_path: Path, delimiter: str) -> None:
    stored, _ = store_upload(tmp_path, "d.csv", csv_bytes(rows=10, delimiter=delimiter))
    assert stored.features["shape"] == [4] and stored.n_rows == 10


def test_a_regression_target_and_several_target_columns(tmp_path: Path) -> None:
    data = b"a,price,b,tax\n1,10.5,2,1\n3,11.5,4,2\n"
    stored, directory = store_upload(tmp_path, "d.csv", data, target="price, tax")
    x, y = stored_arrays(directory)
    assert stored.features["columns"] == ["a", "b"] and x.tolist() == [[1, 2], [3, 4]]
    assert stored.target["columns"] == ["price", "tax"] and stored.target["classes"] is None
    assert y.tolist() == [[10.5, 1.0], [11.5, 2.0]]
    price = stored.stats["target"]["columns"][0]
    assert stored.stats["target"]["kind"] == "regression" and price["mean"] == 11.0


def test_rows_stream_in_batches_across_parquet_row_groups(tmp_path: Path) -> None:
    columns = {"a": list(range(50)), "colour": [f"c{i % 7}" for i in range(50)], "y": [0, 1] * 25}
    stored, directory = store_upload(tmp_path, "d.parquet", parquet_bytes(columns, row_group_size=8))
    x, _ = stored_arrays(directory)
    assert stored.n_rows == 50 and x[:, 0].tolist() == list(range(50))
    assert [stored.features["column_types"][1]["vocabulary"][int(c)] for c in x[:, 1]] == (columns["colour"])


# --- bad data: a 422 that says where -------------------------------------------------------------


def test_a_ragged_row_is_reported_with_its_line_number(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"line 4 has 4 fields but the header has 3"):
        store_upload(tmp_path, "d.csv", b"a,b,label\n1,2,0\n3,4,1\n5,6,7,8\n")


@pytest.mark.parametrize(
    ("fmt", "where"), [("csv", r"data row 2 \(line 3\)"), ("parquet", "row 2"), ("jsonl", "line 2")]
)
def test_a_missing_number_is_kept_with_its_column_and_first_row(tmp_path: Path, fmt: str, where: str) -> None:
    # Stored as NaN; the training job says what to do with it (preprocessing.missing).
    columns = {"a": [1.0, None, 3.0, None], "b": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 0, 1]}
    stored, directory = store_upload(tmp_path, f"d.{fmt}", ENCODERS[fmt](columns))
    missing = stored.features["missing"]
    assert list(missing) == ["a"] and missing["a"]["count"] == 2
    assert re.fullmatch(where, missing["a"]["first"])
    x, _ = stored_arrays(directory)
    assert np.isnan(x[1, 0]) and np.isnan(x[3, 0]) and not np.isnan(x[:, 1]).any()


def test_a_number_too_large_for_float32_is_refused_with_its_row(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"column 'b' has an infinite value at data row 2"):
        store_upload(tmp_path, "d.csv", b"a,b,label\n1,2,0\n3,1e39,1\n")


def test_text_after_the_first_block_of_a_numeric_column_is_located(tmp_path: Path) -> None:
    rows = b"".join(b"%d,%d,%d\n" % (i, i * 2, i % 2) for i in range(60_000))
    data = b"a,b,label\n" + rows + b"7,oops,1\n"
    with pytest.raises(
        DatasetError,
        match=r"column 'b' holds numbers in its first rows but 'oops' at data row 60001",
    ):
        store_upload(tmp_path, "d.csv", data)


def test_non_utf8_text_is_reported_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"line 2 is not valid UTF-8 \(byte 0xff"):
        store_upload(tmp_path, "d.csv", b"a,b,label\n1,x\xff,0\n")


def test_non_utf8_text_in_json_lines_is_reported_with_its_line(tmp_path: Path) -> None:
    data = b'{"a": 1, "b": "x", "y": 0}\n{"a": 2, "b": "\xe9t\xe9", "y": 1}\n'
    with pytest.raises(DatasetError, match=r"line 2 is not valid UTF-8"):
        store_upload(tmp_path, "d.jsonl", data)


def test_a_broken_json_line_is_named(tmp_path: Path) -> None:
    data = b'{"a": 1, "y": 0}\n{"a": 2, "y": 1}\n{"a": 3,, "y": 0}\n'
    with pytest.raises(DatasetError, match=r"line 3 is not valid JSON"):
        store_upload(tmp_path, "d.jsonl", data)


def test_a_header_without_rows_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="the CSV has no data rows"):
        store_upload(tmp_path, "d.csv", b"a,b,label\n")


def test_an_empty_parquet_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="the Parquet file has no data rows"):
        store_upload(tmp_path, "d.parquet", parquet_bytes({"a": [], "y": []}))


def test_a_target_with_one_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"target column 'label' has a single class \('a'\) in all 3 rows"):
        store_upload(tmp_path, "d.csv", b"x,label\n1,a\n2,a\n3,a\n")


def test_more_columns_than_the_limit_is_refused_before_reading_rows(tmp_path: Path) -> None:
    limits = replace(LIMITS, max_columns=5)
    with pytest.raises(DatasetError, match=r"the CSV has 6 columns, over the limit of 5 \(TRAINYARD_MAX_COLUMNS\)"):
        store_upload(tmp_path, "d.csv", csv_bytes(rows=4, features=5), limits=limits)


def test_a_text_column_with_too_many_values_names_the_first_one_over(tmp_path: Path) -> None:
    columns = {"city": ["a", "b", "a", "c", "d"], "label": [0, 1, 0, 1, 0]}
    with pytest.raises(
        DatasetError,
        match=r"column 'city' has more than 3 distinct values \(the next new one is 'd' at "
        r"data row 5 \(line 6\)\).*TRAINYARD_MAX_CATEGORIES",
    ):
        store_upload(tmp_path, "d.csv", csv_from_columns(columns), limits=replace(LIMITS, max_categories=3))


def test_an_unknown_target_lists_the_columns_there_are(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"target column 'y' is not in the header; columns are: a, b, label"):
        store_upload(tmp_path, "d.csv", b"a,b,label\n1,2,0\n", target="y")


def test_an_empty_target_cell_names_its_row(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"target column 'label' is empty at data row 2"):
        store_upload(tmp_path, "d.csv", b"a,label\n1,x\n2,\n3,y\n")
