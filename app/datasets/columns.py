"""Turn the columns of a record batch into stored arrays, one batch at a time.

Numeric feature columns become float32; text feature columns become integer codes into a sorted
vocabulary (a missing value is a category of its own, `None`, sorted last). Codes are handed out
in the order values first appear, because the full vocabulary is only known at the end; the
stored file is then rewritten once with the sorted codes.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.datasets.array_file import rewrite_rows
from app.datasets.schema import MAX_CLASSES, DatasetError, int_classes
from app.datasets.stats import (
    RunningStats,
    categorical_entry,
    classification_stats,
    numeric_entry,
    regression_stats,
)

# Rows of a batch → "data row 3 (line 4)": each source says where its rows are.
Where = Callable[[int], str]

NUMERIC = "numeric"
CATEGORICAL = "categorical"


class CategoryCodes:
    """Codes for the text values of one column, in order of first appearance, under a cap."""

    def __init__(self, name: str, cap: int, too_many: str) -> None:
        self.name = name
        self.cap = cap
        self.too_many = too_many  # the advice that ends the "too many values" error
        self.index: dict[str | None, int] = {}
        self.counts = np.zeros(0, dtype=np.int64)

    def encode(self, array: pa.Array, first_row: int, where: Where) -> np.ndarray:
        encoded = array if pa.types.is_dictionary(array.type) else pc.dictionary_encode(array)
        values = encoded.dictionary.to_pylist()
        lookup = np.empty(len(values) + 1, dtype=np.int64)
        for position, value in enumerate(values):
            lookup[position] = self._code(value, array, first_row, where)
        indices = encoded.indices
        if indices.null_count:
            lookup[-1] = self._code(None, array, first_row, where)
            indices = indices.fill_null(len(values))
        codes = lookup[indices.to_numpy()]
        self.counts = np.pad(self.counts, (0, len(self.index) - len(self.counts)))
        self.counts += np.bincount(codes, minlength=len(self.index))
        return codes

    def vocabulary(self) -> list[str | None]:
        values: list[str | None] = [*sorted(v for v in self.index if v is not None)]
        return [*values, None] if None in self.index else values

    def sorted_codes(self) -> np.ndarray:
        """`sorted_codes()[code]` is the position of that code's value in `vocabulary()`."""
        position = {value: i for i, value in enumerate(self.vocabulary())}
        permutation = np.empty(len(self.index), dtype=np.int64)
        for value, code in self.index.items():
            permutation[code] = position[value]
        return permutation

    def sorted_counts(self) -> np.ndarray:
        counts = np.zeros(len(self.index), dtype=np.int64)
        counts[self.sorted_codes()] = self.counts
        return counts

    def _code(self, value: str | None, array: pa.Array, first_row: int, where: Where) -> int:
        code = self.index.get(value)
        if code is not None:
            return code
        if len(self.index) >= self.cap:
            text = array.dictionary_decode() if pa.types.is_dictionary(array.type) else array
            row = first_row + int(pc.index(text, value).as_py())
            raise DatasetError(
                f"{self.name} has more than {self.cap} distinct values (the next new one is "
                f"{value!r} at {where(row)}); {self.too_many}"
            )
        self.index[value] = len(self.index)
        return self.index[value]


def first_true(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.index(mask, True).as_py())


def numeric_values(array: pa.Array, what: str, first_row: int, where: Where) -> np.ndarray:
    """A numeric column without nulls as numpy (booleans as they are)."""
    if array.null_count:
        row = first_row + first_true(array.is_null())
        raise DatasetError(f"{what} has an empty or NaN value at {where(row)}; fill or drop it before uploading")
    return array.to_numpy(zero_copy_only=False)


def reject_infinite(block: np.ndarray, names: list[str], first_row: int, where: Where) -> None:
    """Infinity (or a number too large for float32) is refused; a missing value (NaN) is kept:
    what to do with it is the training job's choice (`preprocessing.missing`)."""
    infinite = np.isinf(block)
    if infinite.any():
        row, column = (int(i) for i in np.argwhere(infinite)[0])
        raise DatasetError(
            f"column {names[column]!r} has an infinite value at {where(first_row + row)} "
            "(numbers must fit in float32); fix it before uploading"
        )


def reject_non_finite(block: np.ndarray, names: list[str], first_row: int, where: Where) -> None:
    finite = np.isfinite(block)
    if finite.all():
        return
    row, column = (int(i) for i in np.argwhere(~finite)[0])
    problem = "an empty or NaN value" if np.isnan(block[row, column]) else "an infinite value"
    raise DatasetError(
        f"column {names[column]!r} has {problem} at {where(first_row + row)}; "
        "fill or drop it before uploading (numbers must fit in float32)"
    )


class FeatureColumns:
    """Feature columns → a float32 (rows, columns) block per batch, plus their statistics."""

    def __init__(self, names: list[str], kinds: list[str], max_categories: int) -> None:
        self.names = names
        self.kinds = kinds
        self.categories = {
            j: CategoryCodes(
                f"column {name!r}",
                max_categories,
                "text columns are stored as categories, at most TRAINYARD_MAX_CATEGORIES: drop "
                "the column, or raise the limit",
            )
            for j, name in enumerate(names)
            if kinds[j] == CATEGORICAL
        }
        self.numeric = [j for j, kind in enumerate(kinds) if kind == NUMERIC]
        self.numeric_names = [names[j] for j in self.numeric]
        self.running = RunningStats(len(self.numeric))
        self.first_missing: dict[int, str] = {}  # numeric column position → where it is first missing

    def encode(self, batch: pa.RecordBatch, first_row: int, where: Where) -> np.ndarray:
        numeric = self._numeric_block(batch)
        reject_infinite(numeric, self.numeric_names, first_row, where)
        missing = np.isnan(numeric)
        if missing.any():
            for position in np.flatnonzero(missing.any(axis=0)):
                if int(position) not in self.first_missing:
                    row = int(np.argmax(missing[:, position]))
                    self.first_missing[int(position)] = where(first_row + row)
        self.running.update(numeric)
        if not self.categories:
            return numeric
        block = np.empty((batch.num_rows, len(self.names)), dtype=np.float32)
        block[:, self.numeric] = numeric
        for j, codes in self.categories.items():
            block[:, j] = codes.encode(batch.column(self.names[j]), first_row, where)
        return block

    def _numeric_block(self, batch: pa.RecordBatch) -> np.ndarray:
        """The numeric columns as one row-major float32 block, missing values as NaN.

        One pyarrow call (to_tensor) instead of a numpy copy per column: 2.5x faster on
        100 columns, which matters because this runs while pyarrow's threads parse.
        """
        if not self.numeric:
            return np.empty((batch.num_rows, 0), dtype=np.float32)
        by_name = dict(zip(batch.schema.names, batch.columns, strict=True))  # O(1) lookups
        columns = [by_name[name] for name in self.numeric_names]
        columns = [pc.cast(column, pa.float32()) if pa.types.is_boolean(column.type) else column for column in columns]
        numeric = pa.RecordBatch.from_arrays(columns, names=self.numeric_names)
        tensor = numeric.to_tensor(null_to_nan=True, row_major=True)
        return np.asarray(tensor, dtype=np.float32)

    def finish(self, path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Rewrite provisional codes as sorted codes; return the schema and column statistics."""
        if self.categories:
            permutations = {j: codes.sorted_codes() for j, codes in self.categories.items()}

            def to_sorted(block: np.ndarray) -> None:
                for j, permutation in permutations.items():
                    block[:, j] = permutation[block[:, j].astype(np.int64)]

            rewrite_rows(path, to_sorted)
        column_types: list[dict[str, Any]] = []
        stats: list[dict[str, Any]] = []
        summary_index = {j: i for i, j in enumerate(self.numeric)}
        for j, name in enumerate(self.names):
            if j in self.categories:
                codes = self.categories[j]
                vocabulary = codes.vocabulary()
                column_types.append({"name": name, "kind": CATEGORICAL, "vocabulary": vocabulary})
                missing = codes.counts[codes.index[None]] if None in codes.index else 0
                stats.append(categorical_entry(name, codes.sorted_counts(), missing))
            else:
                column_types.append({"name": name, "kind": NUMERIC, "vocabulary": None})
                position = summary_index[j]
                stats.append(numeric_entry(name, self.running.summary(position), self.running.missing[position]))
        schema: dict[str, Any] = {
            "shape": [len(self.names)],
            "dtype": "float32",
            "columns": self.names,
            "column_types": column_types,
        }
        missing = {
            self.numeric_names[position]: {"count": int(self.running.missing[position]), "first": at}
            for position, at in sorted(self.first_missing.items())
        }
        if missing:  # numeric cells left empty: a job must say what to do (preprocessing.missing)
            schema["missing"] = missing
        return schema, stats


class TargetColumns:
    """The target: text labels → class indices, integers → labels, floats → regression values."""

    def __init__(self, names: list[str], kinds: list[pa.DataType]) -> None:
        self.names = names
        single = kinds[0] if len(kinds) == 1 else None
        self.text = single is not None and not is_numeric(single)
        self.integer = single is not None and (pa.types.is_integer(single) or pa.types.is_boolean(single))
        self.classes = CategoryCodes(
            f"target column {names[0]!r}",
            MAX_CLASSES,
            "a target with this many labels is not a classification target",
        )
        self.labels: dict[int, int] | None = {}  # label → rows, while there are few enough
        self.running = RunningStats(len(names))

    @property
    def row_shape(self) -> tuple[int, ...]:
        return () if len(self.names) == 1 else (len(self.names),)

    @property
    def dtype(self) -> type:
        return np.int64 if self.text or self.integer else np.float32

    def encode(self, batch: pa.RecordBatch, first_row: int, where: Where) -> np.ndarray:
        if self.text:
            array = batch.column(self.names[0])
            if array.null_count:
                row = first_row + first_true(array.is_null())
                raise DatasetError(f"target column {self.names[0]!r} is empty at {where(row)}")
            return self.classes.encode(array, first_row, where)
        columns = [
            numeric_values(batch.column(name), f"target column {name!r}", first_row, where) for name in self.names
        ]
        block: np.ndarray = np.column_stack(columns).astype(self.dtype)
        if not self.integer:
            reject_non_finite(block, self.names, first_row, where)
        self.running.update(block)
        if self.integer:
            self._count_labels(block[:, 0])
        return block[:, 0] if len(self.names) == 1 else block

    def finish(self, path: Path) -> tuple[list[Any] | None, dict[str, Any]]:
        """Rewrite text labels as sorted class indices; return the classes and statistics."""
        if self.text:
            permutation = self.classes.sorted_codes()
            rewrite_rows(path, lambda block: permutation[block])
            classes: list[Any] = self.classes.vocabulary()
            return classes, classification_stats(classes, self.classes.sorted_counts())
        if self.integer and self.labels is not None:
            int_labels = int_classes(np.array(sorted(self.labels)))
            if int_labels is not None:
                counts = np.zeros(max(int_labels) + 1, dtype=np.int64)
                for label, rows in self.labels.items():
                    counts[label] = rows
                return int_labels, classification_stats(int_labels, counts)
        return None, regression_stats(self.names, self.running)

    def _count_labels(self, values: np.ndarray) -> None:
        if self.labels is None:
            return
        unique, counts = np.unique(values, return_counts=True)
        for label, rows in zip(unique.tolist(), counts.tolist(), strict=True):
            self.labels[label] = self.labels.get(label, 0) + rows
        if len(self.labels) > MAX_CLASSES:
            self.labels = None  # too many to be classes: a regression target after all


def is_numeric(kind: pa.DataType) -> bool:
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_null(kind)
    )


def is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return is_text(kind.value_type)
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_temporal(kind)
