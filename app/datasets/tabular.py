"""A tabular file (CSV, Parquet, JSON Lines) → features.npy, target.npy, schema and statistics.

The target is the column(s) the user names (default: the last column); every other column is a
feature. Rows stream from the source a batch at a time into the stored files.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

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


def store_table(
    source: TableSource, target: tuple[str, ...] | None, limits: ParseLimits, directory: Path
) -> StoredDataset:
    """Read every row of `source` into `directory`; raise DatasetError naming the place."""
    schema = source.schema()
    names = check_columns(schema.names, source.label, limits.max_columns)
    target_names = list(target) if target else [names[-1]]
    for name in target_names:
        if name not in names:
            raise DatasetError(f"target column {name!r} is not in the header; columns are: {', '.join(names)}")
    feature_names = [name for name in names if name not in target_names]
    if not feature_names:
        raise DatasetError("every column is a target; leave at least one feature column")

    kinds = {name: schema.field(name).type for name in names}
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
    )


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
