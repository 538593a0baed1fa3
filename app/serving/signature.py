"""A served version's tensors, and the one place request arrays are checked against them."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import BadRequest
from app.serving.columns import ColumnSpec


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, numpy dtype and shape (-1: any size; dim 0 is the batch)."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    @classmethod
    def of(cls, spec: dict[str, Any]) -> "TensorSpec":
        return cls(
            name=str(spec["name"]),
            dtype=np.dtype(spec["dtype"]),
            shape=tuple(int(d) if d is not None else -1 for d in spec["shape"]),
        )

    def accepts(self, array: np.ndarray) -> bool:
        """Whether `array` (a batch) has this tensor's rank and fixed sizes after the batch."""
        return array.ndim == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape[1:], array.shape[1:], strict=True)
        )

    def describe_shape(self) -> list[int]:
        return list(self.shape)


@dataclass(frozen=True)
class ServedVersion:
    """What a serving process needs to know of a registered version: no ORM object, no session."""

    name: str
    version: int
    runtime: str  # "onnx" or "keras"
    path: Path  # the artifact the runtime loads
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    classes: tuple[Any, ...] | None = None
    # Tabular models: the dataset's feature columns, which predict rows may be keyed by.
    columns: tuple[ColumnSpec, ...] | None = None
    project: str = "default"  # the project the model belongs to (app.auth)
    artifact: Path | None = None  # the version's .keras file (explain loads it; app.explain)

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)

    def input_named(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)


def to_input_array(spec: TensorSpec, value: Any, where: str) -> np.ndarray:
    """`value` (nested lists or an array) as a batch of `spec`, converted once; 400 otherwise.

    Args:
        where: how the client named this value, for the error message (`instances[3]`).
    """
    array = value if isinstance(value, np.ndarray) else numbers(value, where, f"input {spec.name!r}")
    array = cast_numbers(array, spec.dtype, where, f"input {spec.name!r}")
    if not spec.accepts(array):
        raise BadRequest(
            f"{where}: each instance of input {spec.name!r} must have shape "
            f"{list(spec.shape[1:])}, got {list(array.shape[1:])} "
            f"(the batch has shape {list(array.shape)})"
        )
    return array


def numbers(value: Any, where: str, what: str = "the data") -> np.ndarray:
    """Nested lists of JSON numbers (or booleans) as an array, checked by type before any cast:
    `null`, text, objects, ragged nesting and integers beyond 64 bits are a 400 naming `where`
    (converting straight to a float dtype would turn `null` into NaN without a word)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(f"{where}: {what} must be numbers in equally long nested lists; {exc}") from exc
    if array.dtype.kind not in "biuf":
        raise BadRequest(f"{where}: {what} must be numbers; found {_offender(value)}")
    return array


def cast_numbers(array: np.ndarray, dtype: np.dtype[Any], where: str, what: str = "the data") -> np.ndarray:
    """`array` as `dtype`, refusing what the cast would change: fractions into integers, values out
    of the integer type's range (1000 as int8 would wrap to -24), finite values out of a float's range."""
    if array.dtype == dtype:
        return array
    if array.dtype.kind not in "biuf":
        raise BadRequest(f"{where}: {what} takes {dtype.name} numbers; got {array.dtype}")
    if dtype.kind in "iu":
        if array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
            raise BadRequest(f"{where}: {what} takes integers ({dtype.name}); got fractional numbers")
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise BadRequest(f"{where}: {what} takes {dtype.name} integers, from {info.min} to {info.max}")
        return array.astype(dtype)
    if dtype.kind == "b":
        if array.dtype.kind != "b" and array.size and not np.isin(array, (0, 1)).all():
            raise BadRequest(f"{where}: {what} takes booleans (true/false, or 0/1)")
        return array.astype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.astype(dtype)
    if array.dtype.kind == "f" and not np.isfinite(cast).all() and (np.isinf(cast) & np.isfinite(array)).any():
        raise BadRequest(f"{where}: {what} holds numbers beyond the range of {dtype.name}")
    return cast


def _offender(value: Any) -> str:
    """The first leaf of nested lists that is not a number, as the client wrote it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(reversed(item))
        elif item is None:
            return "null"
        elif isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**64:
            return "an integer beyond 64 bits"
        elif not isinstance(item, int | float):
            return f"{type(item).__name__} {str(item)[:40]!r}"
    return "values that are not numbers"


def _shape_text(spec: TensorSpec) -> str:
    return "[batch, " + ", ".join("any" if d < 0 else str(d) for d in spec.shape[1:]) + "]"
