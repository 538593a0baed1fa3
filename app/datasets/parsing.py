"""Parse an uploaded file once into feature and target arrays plus their schema.

Errors are `DatasetError`s whose message names the row, line or column at fault; the API
turns them into 422s.
"""

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

FORMATS = ("csv", "npz")
NPZ_FEATURE_KEYS = ("x", "X", "features")
NPZ_TARGET_KEYS = ("y", "Y", "labels")
# Integer or text targets with at most this many distinct values are treated as class labels.
MAX_CLASSES = 10_000


class DatasetError(ValueError):
    """The file cannot become a dataset; the message says where and why."""


@dataclass
class ParsedDataset:
    x: np.ndarray
    y: np.ndarray
    features: dict[str, Any]
    target: dict[str, Any]

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])


def detect_format(filename: str, declared: str | None) -> str:
    fmt = (declared or Path(filename).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise DatasetError(
            f"unsupported format {fmt!r} (file {filename!r}); use one of: {', '.join(FORMATS)}, "
            "by file extension or the 'format' form field"
        )
    return fmt


def parse_file(path: Path, fmt: str, target: str | None, max_unpacked_bytes: int) -> ParsedDataset:
    """Parse `path` in format `fmt`. `target` names the label column(s) of tabular files."""
    if fmt == "csv":
        return parse_csv(path, target)
    if fmt == "npz":
        return parse_npz(path, max_unpacked_bytes)
    raise DatasetError(f"unsupported format {fmt!r}")


# --- CSV ---------------------------------------------------------------------------------------


def parse_csv(path: Path, target: str | None) -> ParsedDataset:
    table = _read_csv_table(path)
    if table.num_rows == 0:
        raise DatasetError("the CSV has a header but no data rows")
    columns = table.column_names
    if len(columns) < 2:
        raise DatasetError(f"the CSV needs at least two columns (features and a target); got {columns}")
    target_columns = [c.strip() for c in target.split(",")] if target else [columns[-1]]
    for name in target_columns:
        if name not in columns:
            raise DatasetError(f"target column {name!r} is not in the header; columns are: {', '.join(columns)}")
    feature_columns = [c for c in columns if c not in target_columns]
    if not feature_columns:
        raise DatasetError("every column is a target; leave at least one feature column")

    x = np.column_stack([_numeric_column(table, name) for name in feature_columns]).astype(np.float32)
    features = {"shape": [len(feature_columns)], "dtype": "float32", "columns": feature_columns}
    if len(target_columns) == 1:
        y, target_schema = _encode_target(table.column(target_columns[0]), target_columns[0])
    else:
        y = np.column_stack([_numeric_column(table, name) for name in target_columns]).astype(np.float32)
        target_schema = _target_schema(y, target_columns, classes=None)
    return ParsedDataset(x=x, y=y, features=features, target=target_schema)


def _read_csv_table(path: Path) -> pa.Table:
    bad_rows: list[Any] = []

    def remember(row: Any) -> str:
        bad_rows.append(row)
        return "error"

    try:
        return pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(invalid_row_handler=remember))
    except pa.ArrowInvalid as exc:
        if bad_rows:
            row = bad_rows[0]
            line = _line_number_of(path, row.text)
            where = f"line {line}" if line else "a row"
            raise DatasetError(
                f"CSV {where} has {row.actual_columns} fields but the header has "
                f"{row.expected_columns}: {row.text[:200]!r}"
            ) from exc
        raise DatasetError(f"the file is not readable as CSV: {exc}") from exc


def _line_number_of(path: Path, text: str) -> int | None:
    # Only on the error path: pyarrow's parallel reader does not know line numbers.
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.rstrip(b"\r\n").decode("utf-8", "replace") == text:
                return number
    return None


def _numeric_column(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    kind = column.type
    if pa.types.is_binary(kind):
        raise DatasetError(f"column {name!r} is not valid UTF-8 text; save the file as UTF-8")
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        sample = _first_non_numeric(column)
        raise DatasetError(f"column {name!r} holds text ({sample}); feature columns must be numeric for now")
    missing = column.is_null()
    if pa.types.is_floating(kind):
        missing = pc.or_(missing, pc.is_nan(column))
    if pc.any(missing).as_py():
        row = int(pc.index(missing, True).as_py())
        raise DatasetError(
            f"column {name!r} has an empty or NaN value at data row {row + 1} "
            f"(line {row + 2} of the file); fill or drop it before uploading"
        )
    return column.to_numpy()


def _first_non_numeric(column: pa.ChunkedArray) -> str:
    for index, value in enumerate(column.to_pylist()):
        if value is None:
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            return f"data row {index + 1} (line {index + 2}): {str(value)[:50]!r}"
    return "non-numeric values"


def _encode_target(column: pa.ChunkedArray, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    if column.null_count:
        row = int(pc.index(column.is_null(), True).as_py())
        raise DatasetError(f"target column {name!r} is empty at data row {row + 1} (line {row + 2})")
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        classes, y = np.unique(np.asarray(column.to_pylist(), dtype=object), return_inverse=True)
        if len(classes) > MAX_CLASSES:
            raise DatasetError(f"target column {name!r} has more than {MAX_CLASSES} distinct labels")
        return y.astype(np.int64), _target_schema(y, [name], classes=[str(c) for c in classes])
    values = _numeric_column(pa.table({name: column}), name)
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return values.astype(np.int64), _target_schema(values, [name], classes=_int_classes(values))
    return values.astype(np.float32), _target_schema(values, [name], classes=None)


# --- NPZ ---------------------------------------------------------------------------------------


def parse_npz(path: Path, max_unpacked_bytes: int) -> ParsedDataset:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DatasetError("the file is not a valid .npz (zip) archive") from exc
    with archive:
        unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > max_unpacked_bytes:
            raise DatasetError(f"the .npz unpacks to {unpacked} bytes, over the limit of {max_unpacked_bytes}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            x = _npz_array(npz, NPZ_FEATURE_KEYS, "features")
            y = _npz_array(npz, NPZ_TARGET_KEYS, "target")
    except ValueError as exc:  # object arrays need pickle, which is never allowed
        raise DatasetError(f"the .npz holds an array numpy cannot load safely: {exc}") from exc
    if x.ndim == 0 or x.shape[0] == 0:
        raise DatasetError("the features array 'x' has no rows")
    if y.shape[:1] != x.shape[:1]:
        raise DatasetError(f"'x' has {x.shape[0]} rows but 'y' has {y.shape[0] if y.ndim else 0}")
    if x.dtype.kind == "f":
        x = x.astype(np.float32, copy=False)
        _reject_non_finite(x, "x")
    features = {"shape": list(x.shape[1:]), "dtype": str(x.dtype), "columns": None}
    if y.dtype.kind in "iub":
        y = y.astype(np.int64, copy=False)
        classes = _int_classes(y) if y.ndim == 1 else None
    else:
        y = y.astype(np.float32, copy=False)
        _reject_non_finite(y, "y")
        classes = None
    return ParsedDataset(x=x, y=y, features=features, target=_target_schema(y, None, classes))


def _npz_array(npz: Any, keys: tuple[str, ...], role: str) -> np.ndarray:
    for key in keys:
        if key in npz.files:
            array = np.asarray(npz[key])
            if array.dtype.kind not in "biuf":
                raise DatasetError(f"array {key!r} has dtype {array.dtype}; it must be numeric")
            return array
    raise DatasetError(
        f"the .npz has no {role} array; name it one of {', '.join(keys)} (found: {', '.join(npz.files) or 'nothing'})"
    )


def _reject_non_finite(array: np.ndarray, key: str) -> None:
    bad = ~np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
    if bad.any():
        raise DatasetError(f"array {key!r} has NaN or infinite values at row {int(np.argmax(bad))}")


# --- shared ------------------------------------------------------------------------------------


def _int_classes(values: np.ndarray) -> list[int] | None:
    unique = np.unique(values)
    if len(unique) > MAX_CLASSES or unique.min() < 0:
        return None
    return [int(v) for v in unique]


def _target_schema(y: np.ndarray, columns: list[str] | None, classes: list[Any] | None) -> dict[str, Any]:
    n_classes = None
    if classes is not None:
        n_classes = len(classes) if classes and isinstance(classes[0], str) else int(max(classes)) + 1
    return {
        "shape": list(y.shape[1:]),
        "dtype": "int64" if classes is not None else str(y.dtype),
        "columns": columns,
        "classes": classes,
        "n_classes": n_classes,
    }
