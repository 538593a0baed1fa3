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
    try:
        if isinstance(value, np.ndarray):
            array = value
        elif spec.dtype.kind in "iu":
            # Converting straight to an int dtype would truncate 1.5 to 1 without a word.
            array = np.asarray(value)
            if array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
                raise BadRequest(
                    f"{where}: input {spec.name!r} takes integers ({spec.dtype.name}); got fractional numbers"
                )
        else:
            array = np.asarray(value, dtype=spec.dtype)
    except (ValueError, TypeError) as exc:
        raise BadRequest(
            f"{where}: input {spec.name!r} must be numbers nested as {_shape_text(spec)} ({spec.dtype.name}); {exc}"
        ) from exc
    if array.dtype != spec.dtype:
        if array.dtype.kind not in "biuf" or array.dtype == object:
            raise BadRequest(f"{where}: input {spec.name!r} takes {spec.dtype.name} numbers; got {array.dtype}")
        array = array.astype(spec.dtype)
    if not spec.accepts(array):
        raise BadRequest(
            f"{where}: each instance of input {spec.name!r} must have shape "
            f"{list(spec.shape[1:])}, got {list(array.shape[1:])} "
            f"(the batch has shape {list(array.shape)})"
        )
    return array


def _shape_text(spec: TensorSpec) -> str:
    return "[batch, " + ", ".join("any" if d < 0 else str(d) for d in spec.shape[1:]) + "]"
