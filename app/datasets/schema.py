"""What every parser shares: its error, the limits it works under, and the schema it records."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Integer or text targets with at most this many distinct values are treated as class labels.
MAX_CLASSES = 10_000


class DatasetError(ValueError):
    """The file cannot become a dataset; the message says where and why."""


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on what an upload may unpack into (from the settings)."""

    max_columns: int
    max_categories: int
    max_archive_files: int
    max_unpacked_bytes: int


@dataclass(frozen=True)
class StoredDataset:
    """What a parser wrote (features.npy, target.npy) and recorded about it."""

    n_rows: int
    features: dict[str, Any]
    target: dict[str, Any]
    stats: dict[str, Any]
    warnings: list[str] = field(default_factory=list)  # what was guessed or dropped, in sentences


def int_classes(unique: np.ndarray) -> list[int] | None:
    """Integer labels are classes unless there are too many or some are negative."""
    if len(unique) == 0 or len(unique) > MAX_CLASSES or unique.min() < 0:
        return None
    return [int(v) for v in unique]


def target_schema(shape: list[int], dtype: str, columns: list[str] | None, classes: list[Any] | None) -> dict[str, Any]:
    n_classes = None
    if classes is not None:
        n_classes = len(classes) if classes and isinstance(classes[0], str) else int(max(classes)) + 1
    return {
        "shape": shape,
        "dtype": "int64" if classes is not None else dtype,
        "columns": columns,
        "classes": classes,
        "n_classes": n_classes,
    }


def require_rows(n_rows: int, what: str) -> None:
    if n_rows == 0:
        raise DatasetError(f"{what} has no data rows; a dataset needs at least one")


def require_two_classes(
    classes: list[Any] | None,
    where: str,
    n_rows: int,
    advice: str = "for a regression target, use float values",
) -> None:
    """A classification target with one class cannot train a classifier: say so at the door."""
    if classes is not None and len(classes) == 1:
        raise DatasetError(
            f"{where} has a single class ({classes[0]!r}) in all {n_rows} rows; a classifier "
            f"needs at least two classes ({advice})"
        )
