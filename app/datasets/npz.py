"""An .npz archive of numeric arrays (`x` and `y`, or their usual aliases) → stored arrays."""

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from app.datasets.schema import (
    DatasetError,
    ParseLimits,
    StoredDataset,
    int_classes,
    require_two_classes,
    target_schema,
)
from app.datasets.stats import (
    RunningStats,
    axis_names,
    classification_stats,
    numeric_entry,
    regression_stats,
)
from app.ml.data import save_arrays

NPZ_FEATURE_KEYS = ("x", "X", "features")
NPZ_TARGET_KEYS = ("y", "Y", "labels")


def store_npz(path: Path, limits: ParseLimits, directory: Path) -> StoredDataset:
    """Check and load the archive's arrays (they fit the unpack limit), then store them."""
    x, y = load_npz(path, limits.max_unpacked_bytes)
    if x.ndim == 0 or x.shape[0] == 0:
        raise DatasetError("the features array 'x' has no rows")
    if y.shape[:1] != x.shape[:1]:
        raise DatasetError(f"'x' has {x.shape[0]} rows but 'y' has {y.shape[0] if y.ndim else 0}")
    if x.ndim == 2 and x.shape[1] > limits.max_columns:
        raise DatasetError(
            f"'x' has {x.shape[1]} columns, over the limit of {limits.max_columns} (TRAINYARD_MAX_COLUMNS)"
        )
    if x.dtype.kind == "f":
        x = x.astype(np.float32, copy=False)
        _reject_non_finite(x, "x")
    classes = None
    if y.dtype.kind in "iub":
        y = y.astype(np.int64, copy=False)
        classes = int_classes(np.unique(y)) if y.ndim == 1 else None
    else:
        y = y.astype(np.float32, copy=False)
        _reject_non_finite(y, "y")
    require_two_classes(classes, "array 'y'", x.shape[0])
    save_arrays(directory, x, y)

    feature_shape = list(x.shape[1:])
    return StoredDataset(
        n_rows=int(x.shape[0]),
        features={
            "shape": feature_shape,
            "dtype": str(x.dtype),
            "columns": None,
            "column_types": None,
        },
        target=target_schema(list(y.shape[1:]), str(y.dtype), None, classes),
        stats={"features": _per_last_axis(x), "target": _target_stats(y, classes)},
    )


def load_npz(path: Path, max_unpacked_bytes: int) -> tuple[np.ndarray, np.ndarray]:
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
            return _npz_array(npz, NPZ_FEATURE_KEYS, "features"), _npz_array(npz, NPZ_TARGET_KEYS, "target")
    except ValueError as exc:  # object arrays need pickle, which is never allowed
        raise DatasetError(f"the .npz holds an array numpy cannot load safely: {exc}") from exc


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


def _per_last_axis(array: np.ndarray) -> list[dict[str, Any]]:
    width = array.shape[-1] if array.ndim > 1 else 1
    running = RunningStats(width)
    running.update(array.reshape(-1, width))
    names = axis_names(list(array.shape[1:]))
    return [numeric_entry(name, running.summary(i)) for i, name in enumerate(names)]


def _target_stats(y: np.ndarray, classes: list[int] | None) -> dict[str, Any]:
    if classes is not None:
        return classification_stats(classes, np.bincount(y, minlength=max(classes) + 1))
    width = y.shape[-1] if y.ndim > 1 else 1
    running = RunningStats(width)
    running.update(y.reshape(-1, width))
    return regression_stats(axis_names(list(y.shape[1:]), "y"), running)
