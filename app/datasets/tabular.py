"""A tabular file (CSV, Parquet, JSON Lines) → features.npy, target.npy, schema and statistics.

The target is the column(s) the user names (default: the last column); every other column is a
feature. Rows stream from the source a batch at a time into the stored files. What was guessed
about a CSV (delimiter, decimal mark, column types, a dropped pandas index) is said in warnings;
a numeric column with a few stray words is refused, naming the cells, rather than read as text.
"""

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.datasets.array_file import NpyAppender
from app.datasets.columns import CATEGORICAL, NUMERIC, FeatureColumns, TargetColumns, is_numeric
from app.datasets.columns import is_text as is_text_type
from app.datasets.schema import (
    DatasetError,
    ParseLimits,
    StoredDataset,
    require_rows,
    require_two_classes,
    target_schema,
)
from app.datasets.sources import TableSource
from app.ml.data import FEATURES_FILE, TARGET_FILE

# A numeric-looking text column: at least this share of its non-empty cells are numbers, and the
# rest are few (at most STRAY_CELLS, or STRAY_SHARE of the cells).
NUMERIC_SHARE = 0.8
STRAY_CELLS = 10
STRAY_SHARE = 0.05
SHOWN_CELLS = 5
PANDAS_INDEX_NAMES = ("", "Unnamed: 0")


def store_table(
    source: TableSource,
    target: tuple[str, ...] | None,
    limits: ParseLimits,
    directory: Path,
    text_columns: tuple[str, ...] = (),
) -> StoredDataset:
    """Read every row of `source` into `directory`; raise DatasetError naming the place.

    `text_columns` are kept as text even if they look numeric.
    """
    schema = source.schema()
    warnings = source.guesses()
    names = schema.names
    index = pandas_index(source, schema)
    if index is not None and not (target and index in target):
        names = names[1:]
        warnings.append(
            f"dropped the first column {index!r}: it numbers the rows 0 to n-1, as a pandas index does "
            "(DataFrame.to_csv(index=False) leaves it out)"
        )
    names = check_columns(names, source.label, limits.max_columns)
    target_names = list(target) if target else [names[-1]]
    for name in target_names:
        if name not in names:
            raise DatasetError(f"target column {name!r} is not in the header; columns are: {', '.join(names)}")
    feature_names = [name for name in names if name not in target_names]
    if not feature_names:
        raise DatasetError("every column is a target; leave at least one feature column")

    for name in text_columns:
        if name not in names:
            raise DatasetError(f"form field 'text_columns' names {name!r}, which is not a column; columns are: "
                               f"{', '.join(names)}")  # fmt: skip
    # A column named in text_columns is text even where every cell is a number (zip codes, ids).
    kinds = {name: pa.string() if name in text_columns else schema.field(name).type for name in names}
    looked_at = [name for name in names if name not in text_columns and is_text_type(kinds[name])]
    cells = source.text_columns(looked_at) if looked_at else None
    if cells is not None:
        for name in looked_at:
            refuse_stray_words(name, cells.column(name), getattr(source, "decimal", "."), source.where)
    if source.types_guessed:
        warnings.append(guessed_types(names, kinds))
    feature_kinds = [feature_kind(name, kinds[name], source.label) for name in feature_names]
    target_kinds = [kinds[name] for name in target_names]
    check_target_kinds(target_names, target_kinds, source.label)
    read_types = {
        name: read_type(kinds[name], text=kind == CATEGORICAL, integer=False)
        for name, kind in zip(feature_names, feature_kinds, strict=True)
    } | {
        name: read_type(kinds[name], text=not is_numeric(kinds[name]), integer=len(target_names) == 1)
        for name in target_names
    }

    features = FeatureColumns(feature_names, feature_kinds, limits.max_categories)
    targets = TargetColumns(target_names, target_kinds)
    with (
        NpyAppender(directory / FEATURES_FILE, (len(feature_names),), "float32") as x_file,
        NpyAppender(directory / TARGET_FILE, targets.row_shape, targets.dtype) as y_file,
    ):
        rows = 0
        for batch in source.batches({name: read_types[name] for name in names}):
            x_file.append(features.encode(batch, rows, source.where))
            y_file.append(targets.encode(batch, rows, source.where))
            rows += batch.num_rows
    require_rows(rows, source.label)

    features_schema, feature_stats = features.finish(directory / FEATURES_FILE)
    classes, target_stats = targets.finish(directory / TARGET_FILE)
    where = f"target column {target_names[0]!r}"
    require_two_classes(classes, where, rows)
    return StoredDataset(
        n_rows=rows,
        features=features_schema,
        target=target_schema(list(targets.row_shape), np.dtype(targets.dtype).name, target_names, classes),
        stats={"features": feature_stats, "target": target_stats},
        warnings=warnings,
    )


def pandas_index(source: TableSource, schema: pa.Schema) -> str | None:
    """The first column's name if it is unnamed and holds 0, 1, 2, ... (pandas' to_csv default)."""
    first = schema.names[0]
    if first not in PANDAS_INDEX_NAMES or not pa.types.is_integer(schema.field(first).type):
        return None
    table = source.text_columns([first])
    if table is None or table.column(first).null_count:
        return None
    cells = table.column(first)
    try:
        values = pc.cast(cells, pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        return None
    return first if np.array_equal(values, np.arange(len(values))) else None


def refuse_stray_words(name: str, cells: pa.ChunkedArray, decimal: str, where: Callable[[int], str]) -> None:
    """A column of numbers with a few words in it is a mistake to show, not a text column."""
    number = rf"^\s*[-+]?(\d+(\{decimal}\d*)?|\{decimal}\d+)([eE][-+]?\d+)?\s*$"
    filled = pc.fill_null(pc.invert(pc.is_null(cells)), False)
    numeric = pc.fill_null(pc.match_substring_regex(cells, number), False)
    n_filled = pc.sum(filled).as_py() or 0
    n_numeric = pc.sum(numeric).as_py() or 0
    n_stray = n_filled - n_numeric
    if n_stray == 0 or n_numeric < NUMERIC_SHARE * n_filled or n_stray > max(STRAY_CELLS, STRAY_SHARE * n_filled):
        return  # numbers after all, or genuinely text
    stray = np.flatnonzero(np.asarray(pc.and_(filled, pc.invert(numeric))))
    values = cells.take(pa.array(stray[:SHOWN_CELLS])).to_pylist()
    shown = ", ".join(f"{value!r} at {where(int(row))}" for row, value in zip(stray, values, strict=False))
    more = f" and {n_stray - SHOWN_CELLS} more" if n_stray > SHOWN_CELLS else ""
    raise DatasetError(
        f"column {name!r} holds numbers but {n_stray} cell(s) are not: {shown}{more}. Fix or empty them "
        f"(an empty cell is a missing value), or send the form field text_columns={name} to keep the "
        "column as text categories"
    )


def guessed_types(names: list[str], kinds: dict[str, pa.DataType]) -> str:
    numeric = [name for name in names if is_numeric(kinds[name])]
    text = [name for name in names if not is_numeric(kinds[name])]
    parts = [f"numbers: {_listed(numeric)}" if numeric else "", f"text: {_listed(text)}" if text else ""]
    return "column types guessed from the first rows; " + "; ".join(part for part in parts if part)


def _listed(names: list[str], shown: int = 20) -> str:
    listed = ", ".join(repr(name) for name in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def check_columns(names: list[str], label: str, max_columns: int) -> list[str]:
    if len(names) > max_columns:
        raise DatasetError(f"{label} has {len(names)} columns, over the limit of {max_columns} (TRAINYARD_MAX_COLUMNS)")
    if len(names) < 2:
        raise DatasetError(f"{label} needs at least two columns (features and a target); got {names}")
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise DatasetError(f"column {repeated[0]!r} appears more than once in {label}'s header")
    return names


def feature_kind(name: str, kind: pa.DataType, label: str) -> str:
    if is_numeric(kind):
        return NUMERIC
    if is_text_type(kind):
        return CATEGORICAL
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        raise DatasetError(f"column {name!r} is not valid UTF-8 text; save the file as UTF-8")
    raise DatasetError(f"column {name!r} in {label} holds {kind} values; a feature column must hold numbers or text")


def check_target_kinds(names: list[str], kinds: list[pa.DataType], label: str) -> None:
    for name, kind in zip(names, kinds, strict=True):
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            raise DatasetError(f"column {name!r} is not valid UTF-8 text; save the file as UTF-8")
        if len(names) > 1 and not is_numeric(kind):
            raise DatasetError(
                f"target column {name!r} holds {kind} values; with several target columns, each must be numeric"
            )
        if not (is_numeric(kind) or is_text_type(kind)):
            raise DatasetError(f"target column {name!r} in {label} holds {kind} values")


def read_type(inferred: pa.DataType, *, text: bool, integer: bool) -> pa.DataType:
    """How to read a column: text as strings, booleans as they are, numbers as float32.

    A single target column of integers stays integer (class labels).
    """
    if text:
        return pa.string()
    if integer and pa.types.is_integer(inferred):
        return pa.int64()
    if pa.types.is_boolean(inferred):
        return pa.bool_()
    return pa.float32()
