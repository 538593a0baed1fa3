"""An .npz archive of numeric arrays (`x` and `y`, or their usual aliases) → stored arrays."""

import math
import zipfile
import zlib
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
MAX_NPY_HEADER_BYTES = 10_000  # numpy's own default; a shape or dtype never needs more


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
    """The features and target arrays. Each member's .npy header is checked against the member's
    size before anything is allocated: a header may claim 800 GB, a central directory may lie."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            unpacked = sum(info.file_size for info in members.values())
            if unpacked > max_unpacked_bytes:
                raise DatasetError(
                    f"the .npz unpacks to {unpacked} bytes, over the limit of {max_unpacked_bytes} "
                    "(TRAINYARD_MAX_UPLOAD_BYTES x TRAINYARD_MAX_UNPACK_FACTOR)"
                )
            x = _read_member(archive, _member(members, NPZ_FEATURE_KEYS, "features"))
            y = _read_member(archive, _member(members, NPZ_TARGET_KEYS, "target"))
            return x, y
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        RuntimeError,
        NotImplementedError,
        UnicodeDecodeError,
    ) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: a compression zipfile lacks;
        # UnicodeDecodeError: a member name flagged UTF-8 that is not.
        raise DatasetError(f"the file is not a valid .npz (zip) archive: {exc}") from exc


def _member(members: dict[str, zipfile.ZipInfo], keys: tuple[str, ...], role: str) -> zipfile.ZipInfo:
    for key in keys:
        if key in members:
            return members[key]
    found = ", ".join(sorted(members)) or "nothing"
    raise DatasetError(f"the .npz has no {role} array; name it one of {', '.join(keys)} (found: {found})")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    key = info.filename.removesuffix(".npy")
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unknown .npy format version {version}")
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(member, max_header_size=MAX_NPY_HEADER_BYTES)
        except ValueError as exc:
            raise DatasetError(f"array {key!r} is not a valid .npy file: {exc}") from exc
        if dtype.kind not in "biuf" or dtype.hasobject:
            raise DatasetError(f"array {key!r} has dtype {dtype}; it must be numeric")
        data_bytes = math.prod(shape) * dtype.itemsize
        if member.tell() + data_bytes != info.file_size:
            raise DatasetError(
                f"array {key!r}: its header claims shape {list(shape)} of {dtype} ({data_bytes} bytes), but the "
                f"archive member holds {info.file_size - member.tell()} bytes of data"
            )
        data = member.read(data_bytes)  # the whole member: zipfile checks its CRC at the end
    if len(data) != data_bytes:
        raise DatasetError(f"array {key!r} is truncated: {len(data)} of {data_bytes} bytes")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


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
