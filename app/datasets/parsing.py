"""Parse an uploaded file once into stored feature and target arrays plus their schema.

The format comes from the file's extension or the `format` form field (`.tsv` and `.tab` are
tab-separated CSV); the other form fields (`target`, `decimal`, `text_columns`, `image_size`,
`color_mode`) become `ParseOptions`, which, with the file's hash, identify a dataset. Errors
are `DatasetError`s naming the row, line, column, file or field at fault; the API turns them
into 422s.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from app.datasets.images import COLOR_MODES, store_images
from app.datasets.npz import store_npz
from app.datasets.schema import DatasetError, ParseLimits, StoredDataset
from app.datasets.sources import CsvSource, JsonLinesSource, ParquetSource, TableSource
from app.datasets.tabular import store_table

TABULAR_FORMATS = ("csv", "parquet", "jsonl")
FORMATS = (*TABULAR_FORMATS, "npz", "zip")
TAB_SEPARATED = ("tsv", "tab")  # CSV with tabs
DECIMAL_MARKS = (".", ",")
DEFAULT_IMAGE_SIZE = (256, 256)
MAX_IMAGE_SIDE = 2048


@dataclass(frozen=True)
class ParseOptions:
    """How to read an upload: only the options that matter for its format are set."""

    format: str
    target: tuple[str, ...] | None = None  # tabular formats
    image_size: tuple[int, int] | None = None  # zip: (height, width)
    color_mode: str | None = None  # zip
    delimiter: str | None = None  # csv: None is guessed from the first lines
    decimal: str | None = None  # csv: None is guessed (a comma only with another delimiter)
    text_columns: tuple[str, ...] | None = None  # tabular: numeric-looking columns kept as text

    @classmethod
    def from_form(cls, filename: str, fields: dict[str, str]) -> "ParseOptions":
        declared = (fields.get("format") or Path(filename).suffix.lstrip(".")).lower()
        fmt = "csv" if declared in TAB_SEPARATED else detect_format(filename, fields.get("format"))
        if fmt in TABULAR_FORMATS:
            return cls(
                format=fmt,
                target=_names(fields.get("target")),
                delimiter="\t" if declared in TAB_SEPARATED else None,
                decimal=parse_decimal(fields.get("decimal")) if fmt == "csv" else None,
                text_columns=_names(fields.get("text_columns")),
            )
        if fmt == "zip":
            return cls(
                format=fmt,
                image_size=parse_image_size(fields.get("image_size")),
                color_mode=parse_color_mode(fields.get("color_mode")),
            )
        return cls(format=fmt)

    def digest(self) -> str:
        """Identifies the options: the same bytes parsed with the same digest give the same data."""
        options = asdict(self)
        for later in ("delimiter", "decimal", "text_columns"):  # unset: digests as before they existed
            if options[later] is None:
                del options[later]
        canonical = json.dumps(options, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _names(value: str | None) -> tuple[str, ...] | None:
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    return tuple(names) or None


def detect_format(filename: str, declared: str | None) -> str:
    fmt = (declared or Path(filename).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise DatasetError(
            f"unsupported format {fmt!r} (file {filename!r}); use one of: {', '.join(FORMATS)} "
            f"(or {', '.join(TAB_SEPARATED)} for tab-separated CSV), by file extension or the 'format' form field"
        )
    return fmt


def parse_decimal(value: str | None) -> str | None:
    if not value:
        return None
    if value not in DECIMAL_MARKS:
        raise DatasetError(f"form field 'decimal' is {value!r}; use '.' or ','")
    return value


def parse_image_size(value: str | None) -> tuple[int, int]:
    if not value:
        return DEFAULT_IMAGE_SIZE
    parts = value.replace("x", ",").split(",")
    try:
        height, width = (int(part) for part in parts)
    except ValueError:
        raise DatasetError(
            f"form field 'image_size' is {value!r}; give 'height,width' in pixels, such as '64,64'"
        ) from None
    if not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
        raise DatasetError(f"form field 'image_size' is {value!r}; each side must be 1 to {MAX_IMAGE_SIDE} pixels")
    return height, width


def parse_color_mode(value: str | None) -> str:
    mode = (value or "rgb").lower()
    if mode not in COLOR_MODES:
        raise DatasetError(f"form field 'color_mode' is {value!r}; use one of: {', '.join(COLOR_MODES)}")
    return mode


def parse_file(path: Path, options: ParseOptions, limits: ParseLimits, directory: Path) -> StoredDataset:
    """Parse `path` and write features.npy and target.npy into `directory`."""
    if options.format in TABULAR_FORMATS:
        source = table_source(path, options, limits)
        return store_table(source, options.target, limits, directory, options.text_columns or ())
    if options.format == "npz":
        return store_npz(path, limits, directory)
    if options.format == "zip":
        image_size = options.image_size or DEFAULT_IMAGE_SIZE
        return store_images(path, image_size, options.color_mode or "rgb", limits, directory)
    raise DatasetError(f"unsupported format {options.format!r}")


def table_source(path: Path, options: ParseOptions, limits: ParseLimits) -> TableSource:
    if options.format == "csv":
        return CsvSource(path, options.delimiter, options.decimal)
    if options.format == "parquet":
        return ParquetSource(path, limits.max_unpacked_bytes)
    return JsonLinesSource(path)
