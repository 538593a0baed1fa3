"""Formats and parse options: how an upload says how it should be read."""

import pytest

from app.datasets.parsing import ParseOptions, detect_format
from app.datasets.schema import DatasetError


def test_formats_come_from_the_extension_or_the_form_field() -> None:
    assert detect_format("data.CSV", None) == "csv"
    assert detect_format("rows.jsonl", None) == "jsonl"
    assert detect_format("table.parquet", None) == "parquet"
    assert detect_format("blob.bin", "npz") == "npz"
    with pytest.raises(DatasetError, match="unsupported format 'h5'"):
        detect_format("model.h5", None)


def test_only_the_options_that_matter_for_a_format_are_kept() -> None:
    options = ParseOptions.from_form("d.csv", {"target": " price , kind ", "name": "x"})
    assert options == ParseOptions(format="csv", target=("price", "kind"))
    assert ParseOptions.from_form("d.npz", {"target": "y"}) == ParseOptions(format="npz")


def test_the_digest_tells_options_apart_and_ignores_what_does_not_matter() -> None:
    default = ParseOptions.from_form("a.csv", {})
    assert default.digest() == ParseOptions.from_form("b.csv", {"name": "other"}).digest()
    assert default.digest() != ParseOptions.from_form("a.csv", {"target": "label"}).digest()
    assert default.digest() != ParseOptions.from_form("a.jsonl", {}).digest()
