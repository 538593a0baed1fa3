"""Reading rows to predict from CSV or JSON files, and writing predictions back as CSV or JSON."""

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np


def read_rows(path: Path) -> list[Any]:
    """The rows of a `.csv` (a header of column names: each row an object keyed by column; no
    header: each row a list of numbers) or `.json` file (a list of rows, or `{"instances": [...]}`).
    """
    suffix = path.suffix.lower()
    if suffix == ".json":
        loaded = json.loads(path.read_text())
        rows = loaded.get("instances") if isinstance(loaded, dict) else loaded
        if not isinstance(rows, list):
            raise ValueError(f'{path}: expected a JSON list of rows or {{"instances": [...]}}')
        return rows
    if suffix in {".csv", ".tsv"}:
        return _csv_rows(path, "\t" if suffix == ".tsv" else ",")
    raise ValueError(f"{path}: predict reads .csv, .tsv or .json files, not {suffix or 'no extension'}")


def _csv_rows(path: Path, delimiter: str) -> list[Any]:
    records = list(csv.reader(io.StringIO(path.read_text()), delimiter=delimiter))
    records = [r for r in records if r]
    if not records:
        raise ValueError(f"{path}: no rows")
    if all(_number(cell) is not None for cell in records[0]):  # no header: rows of numbers
        return [[_cell(cell, path, n + 1) for cell in record] for n, record in enumerate(records)]
    header = records[0]
    rows = []
    for n, record in enumerate(records[1:], start=2):
        if len(record) != len(header):
            raise ValueError(f"{path}: line {n} has {len(record)} cells, the header {len(header)}")
        rows.append({name: _typed(cell) for name, cell in zip(header, record, strict=True)})
    return rows


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _cell(cell: str, path: Path, line: int) -> float | None:
    if cell.strip() == "":
        return None  # a missing value: the model's fill applies
    value = _number(cell)
    if value is None:
        raise ValueError(f"{path}: line {line}: {cell!r} is not a number (give a header row for text columns)")
    return value


def _typed(cell: str) -> float | str | None:
    """Numbers as numbers, text (categories) as text, an empty cell as missing."""
    if cell.strip() == "":
        return None
    value = _number(cell)
    return cell if value is None else value


def write_predictions(predictions: np.ndarray | dict[str, np.ndarray], fmt: str) -> str:
    """Predictions as JSON (`{"predictions": [...]}`) or CSV (a column per output value)."""
    if fmt == "json":
        as_lists = (
            {k: v.tolist() for k, v in predictions.items()} if isinstance(predictions, dict) else predictions.tolist()
        )
        return json.dumps({"predictions": as_lists}) + "\n"
    columns = predictions if isinstance(predictions, dict) else {"prediction": predictions}
    flat = {name: values.reshape(len(values), -1) for name, values in columns.items()}
    header = [
        f"{name}_{i}" if block.shape[1] > 1 else name for name, block in flat.items() for i in range(block.shape[1])
    ]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    n_rows = len(next(iter(flat.values())))
    for r in range(n_rows):
        writer.writerow(
            [repr(float(x)) if isinstance(x, float | np.floating) else x for b in flat.values() for x in b[r]]
        )
    return out.getvalue()
