"""Raw tabular rows for predict: keyed by column, with categories as text."""

import numpy as np
import pytest

from app.errors import BadRequest
from app.serving.columns import ColumnSpec, encode_rows, wants_column_encoding

COLUMNS = (ColumnSpec("size"), ColumnSpec("colour", ("blue", "green", "red")))


def test_rows_keyed_by_column_name_become_the_training_rows() -> None:
    rows = encode_rows([{"colour": "red", "size": 1.5}, {"size": 2, "colour": "blue"}], COLUMNS)
    np.testing.assert_array_equal(rows, np.array([[1.5, 2.0], [2.0, 0.0]], dtype=np.float32))


def test_lists_in_column_order_may_hold_category_text() -> None:
    np.testing.assert_array_equal(encode_rows([[3.0, "green"]], COLUMNS), np.array([[3.0, 1.0]], dtype=np.float32))


def test_an_unknown_category_names_the_row_column_and_known_values() -> None:
    with pytest.raises(BadRequest, match=r"instances\[0\]\.colour: unknown category 'pink'; the model knows 'blue'"):
        encode_rows([{"size": 1, "colour": "pink"}], COLUMNS)


def test_missing_and_unknown_keys_are_named() -> None:
    with pytest.raises(BadRequest, match=r"missing \['colour'\]; unknown \['color'\]"):
        encode_rows([{"size": 1, "color": "red"}], COLUMNS)


def test_a_number_column_refuses_text() -> None:
    with pytest.raises(BadRequest, match=r"instances\[0\]\.size: expected a number, got 'big'"):
        encode_rows([["big", "red"]], COLUMNS)


def test_plain_numeric_rows_skip_encoding() -> None:
    assert not wants_column_encoding([[1.0, 2.0]], ["features"])
    assert wants_column_encoding([[1.0, "red"]], ["features"])
    assert wants_column_encoding([{"size": 1.0, "colour": "red"}], ["features"])
    assert not wants_column_encoding([{"features": [1.0, 2.0]}], ["features"])


def test_an_empty_cell_is_filled_as_training_filled_it() -> None:
    columns = (ColumnSpec("size", fill=2.5), ColumnSpec("colour", ("blue", "red")))
    np.testing.assert_array_equal(
        encode_rows([{"size": None, "colour": "red"}], columns), np.array([[2.5, 1.0]], dtype=np.float32)
    )
