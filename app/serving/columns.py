"""Raw tabular rows for predict: lists in column order or objects keyed by column name, with
text values for categorical columns, turned into the float rows the model was trained on."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import BadRequest

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class ColumnSpec:
    """A feature column of the training dataset; `vocabulary` for text (categorical) columns."""

    name: str
    vocabulary: tuple[Any, ...] | None = None
    fill: float | None = None  # what training filled empty cells with (preprocessing.missing)

    @classmethod
    def of(cls, column: dict[str, Any]) -> "ColumnSpec":
        vocabulary = column.get("vocabulary") if column.get("kind") == "categorical" else None
        fill = column.get("fill") if column.get("kind") != "categorical" else None
        return cls(
            name=str(column["name"]),
            vocabulary=tuple(vocabulary) if vocabulary is not None else None,
            fill=float(fill) if fill is not None else None,
        )


def wants_column_encoding(instances: list[Any], input_names: list[str]) -> bool:
    """Rows keyed by column name, or holding text values, need encoding (numbers in input
    order go straight to the model)."""
    first = instances[0]
    if isinstance(first, dict):
        return list(first) != input_names
    return isinstance(first, list) and any(isinstance(value, str) or value is None for value in first)


def encode_rows(instances: list[Any], columns: tuple[ColumnSpec, ...]) -> np.ndarray:
    """Each row as the model's float vector: numbers as they are, categories as their codes."""
    names = [column.name for column in columns]
    codes = [
        {value: code for code, value in enumerate(c.vocabulary)} if c.vocabulary is not None else None for c in columns
    ]
    out = np.empty((len(instances), len(columns)), dtype=np.float32)
    for row, instance in enumerate(instances):
        values = _values(instance, names, f"instances[{row}]")
        for position, (value, column, lookup) in enumerate(zip(values, columns, codes, strict=True)):
            where = f"instances[{row}].{column.name}"
            if lookup is not None:
                # Only scalars can be categories: a list or object is not hashable, let alone known.
                if not isinstance(value, str | int | float | bool) or value not in lookup:
                    known = ", ".join(repr(v) for v in column.vocabulary[:20])  # type: ignore[index]
                    raise BadRequest(f"{where}: unknown category {_shown(value)}; the model knows {known}")
                out[row, position] = lookup[value]
            elif isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value) if isinstance(value, float) or abs(value) < 2**63 else math.inf
                if math.isfinite(number) and abs(number) > FLOAT32_MAX:
                    number = math.inf
                if math.isinf(number) and not (isinstance(value, float) and math.isinf(value)):
                    raise BadRequest(f"{where}: {_shown(value)} is beyond the range of float32")
                out[row, position] = number
            elif value is None and column.fill is not None:
                out[row, position] = column.fill
            else:
                raise BadRequest(f"{where}: expected a number, got {_shown(value)}")
    return out


def _values(instance: Any, names: list[str], where: str) -> list[Any]:
    if isinstance(instance, dict):
        missing = [name for name in names if name not in instance]
        unknown = [key for key in instance if key not in names]
        if missing or unknown:
            raise BadRequest(
                f"{where}: the model's columns are {names}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
            )
        return [instance[name] for name in names]
    if isinstance(instance, list) and len(instance) == len(names):
        return instance
    raise BadRequest(f"{where}: a row is a list of {len(names)} values in column order, or an object keyed by column")


def _shown(value: Any) -> str:
    """A client's value for an error message, short (and no giant integer turned into text)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return "an integer beyond 64 bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
