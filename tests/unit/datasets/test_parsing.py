"""Formats and parse options: how an upload says how it should be read."""

import hashlib

import pytest

from app.datasets.parsing import ParseOptions, detect_format
from app.datasets.schema import DatasetError


def test_formats_come_from_the_extension_or_the_form_field() -> None:
    assert detect_format("data.CSV", None) == "csv"
    assert detect_format("rows.jsonl", None) == "jsonl"
    assert detect_format("table.parquet", None) == "parquet"
    assert detect_format("photos.zip", None) == "zip"
    assert detect_format("blob.bin", "npz") == "npz"
    with pytest.raises(DatasetError, match="unsupported format 'h5'"):
        detect_format("model.h5", None)


def test_only_the_options_that_matter_for_a_format_are_kept() -> None:
    options = ParseOptions.from_form("d.csv", {"target": " price , kind ", "image_size": "8,8", "name": "x"})
    assert options == ParseOptions(format="csv", target=("price", "kind"))
    assert ParseOptions.from_form("d.npz", {"target": "y"}) == ParseOptions(format="npz")


def test_image_options_default_to_keras_defaults() -> None:
    assert ParseOptions.from_form("d.zip", {}) == ParseOptions(format="zip", image_size=(256, 256), color_mode="rgb")
    options = ParseOptions.from_form("d.zip", {"image_size": "64x32", "color_mode": "Grayscale"})
    assert (options.image_size, options.color_mode) == ((64, 32), "grayscale")


def test_the_digest_tells_options_apart_and_ignores_what_does_not_matter() -> None:
    default = ParseOptions.from_form("a.csv", {})
    assert default.digest() == ParseOptions.from_form("b.csv", {"image_size": "9,9"}).digest()
    assert default.digest() != ParseOptions.from_form("a.csv", {"target": "label"}).digest()
    assert default.digest() != ParseOptions.from_form("a.jsonl", {}).digest()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image_size": "big"}, r"form field 'image_size' is 'big'; give 'height,width'"),
        ({"image_size": "0,64"}, r"each side must be 1 to 2048 pixels"),
        ({"color_mode": "cmyk"}, r"form field 'color_mode' is 'cmyk'; use one of: rgb"),
    ],
)
def test_bad_image_options_name_the_form_field(fields: dict[str, str], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        ParseOptions.from_form("d.zip", fields)


def test_options_added_later_leave_earlier_digests_as_they_were() -> None:
    # What digest() hashed before delimiter, decimal and text_columns existed: stored datasets
    # keep deduplicating against new uploads of the same bytes.
    before = '{"color_mode":null,"format":"csv","image_size":null,"target":["label"]}'
    assert ParseOptions.from_form("d.csv", {"target": "label"}).digest() == hashlib.sha256(before.encode()).hexdigest()
    assert ParseOptions.from_form("d.csv", {"decimal": ","}).digest() != ParseOptions.from_form("d.csv", {}).digest()


def test_tab_separated_extensions_are_csv_with_tabs_and_the_decimal_mark_is_checked() -> None:
    assert ParseOptions.from_form("rows.TSV", {}) == ParseOptions(format="csv", delimiter="\t")
    with pytest.raises(DatasetError, match="form field 'decimal' is ';'"):
        ParseOptions.from_form("d.csv", {"decimal": ";"})
