"""Stored dataset arrays → what `model.fit` takes, with labels encoded the way the loss needs."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.ml.spec import SpecError

ONE_HOT_LOSSES = ("categorical_crossentropy", "CategoricalCrossentropy")
FEATURES_FILE = "features.npy"
TARGET_FILE = "target.npy"


@dataclass(frozen=True)
class TrainingArrays:
    x: np.ndarray
    y: np.ndarray
    # the stored class indexes (before any one-hot encoding), for stratified splits
    class_labels: np.ndarray | None = None


def load_arrays(dataset_dir: Path, loss: str, n_classes: int | None) -> TrainingArrays:
    """Memory-map the stored arrays (no copy per job) and encode labels for `loss`.

    `categorical_crossentropy` wants one-hot rows; datasets store class indices, so they are
    expanded here rather than asking users to one-hot by hand.
    """
    x = np.load(dataset_dir / FEATURES_FILE, mmap_mode="r", allow_pickle=False)
    y = np.load(dataset_dir / TARGET_FILE, mmap_mode="r", allow_pickle=False)
    class_labels = y if y.ndim == 1 and n_classes else None
    if loss in ONE_HOT_LOSSES and y.ndim == 1 and n_classes:
        y = one_hot(np.asarray(y), n_classes)
    return TrainingArrays(x=x, y=y, class_labels=class_labels)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    encoded = np.zeros((labels.shape[0], n_classes), dtype=np.float32)
    encoded[np.arange(labels.shape[0]), labels.astype(np.int64)] = 1.0
    return encoded


def save_arrays(dataset_dir: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.save(dataset_dir / FEATURES_FILE, x, allow_pickle=False)
    np.save(dataset_dir / TARGET_FILE, y, allow_pickle=False)


@dataclass(frozen=True)
class TabularInputs:
    """How whole rows of a tabular dataset become the graph's inputs inside the model.

    Each input takes its columns (all of them by default); text columns, stored as codes, are
    one-hot encoded; numeric columns are standardized when asked. The model then takes plain
    rows, for training and for predict alike.
    """

    n_features: int
    indexes: dict[str, list[int]]  # graph input → the column indexes it takes
    category_sizes: dict[int, int]  # categorical column index → number of categories
    standardize: bool = False

    @classmethod
    def of(
        cls, bindings: dict[str, "InputBinding"], features: dict[str, Any], standardize: bool = False
    ) -> "TabularInputs | None":
        """None when rows can go to the model as they are (arrays, or plain numeric columns)."""
        if not features.get("columns"):
            return None
        column_types = features.get("column_types") or []
        sizes = {
            index: len(column["vocabulary"])
            for index, column in enumerate(column_types)
            if column.get("kind") == "categorical"
        }
        selected = {name: b.column_indexes for name, b in bindings.items() if b.column_indexes is not None}
        if not (selected or sizes or standardize):
            return None
        n_features = int(features["shape"][0])
        indexes = {name: b.column_indexes or list(range(n_features)) for name, b in bindings.items()}
        return cls(n_features=n_features, indexes=indexes, category_sizes=sizes, standardize=standardize)

    def encoded_width(self, name: str) -> int:
        return sum(self.category_sizes.get(index, 1) for index in self.indexes[name])


@dataclass(frozen=True)
class InputBinding:
    """A model input: its per-sample shape and, for tabular data, the feature columns it takes."""

    shape: tuple[int, ...]
    column_indexes: list[int] | None = None


def bind_inputs(graph_inputs: list[Any], features: dict[str, Any]) -> dict[str, InputBinding]:
    """Map each model input to the dataset's features. Raises SpecError naming the field."""
    dataset_shape = tuple(features["shape"])
    columns: list[str] = features.get("columns") or []
    bindings: dict[str, InputBinding] = {}
    if len(graph_inputs) > 1 and any(i.columns is None for i in graph_inputs):
        raise SpecError(
            "model.inputs",
            "with several inputs, each needs `columns`: the feature columns it takes",
        )
    for index, graph_input in enumerate(graph_inputs):
        path = f"model.inputs[{index}]"
        if graph_input.columns is not None:
            if not columns:
                raise SpecError(f"{path}.columns", "the dataset has no named columns (only tabular data has)")
            indexes = []
            for position, name in enumerate(graph_input.columns):
                if name not in columns:
                    raise SpecError(
                        f"{path}.columns[{position}]",
                        f"no feature column {name!r}; columns are: {', '.join(columns)}",
                    )
                indexes.append(columns.index(name))
            shape: tuple[int, ...] = (len(indexes),)
            if graph_input.shape and tuple(graph_input.shape) != shape:
                raise SpecError(
                    f"{path}.shape",
                    f"{len(indexes)} columns give shape {list(shape)}, not {graph_input.shape}",
                )
            bindings[graph_input.name] = InputBinding(shape=shape, column_indexes=indexes)
            continue
        if graph_input.shape and tuple(graph_input.shape) != dataset_shape:
            where = f"{path}.shape" if graph_input.name != "features" else "model.input_shape"
            raise SpecError(
                where,
                f"the model expects samples of shape {list(graph_input.shape)} "
                f"but the dataset's features have shape {list(dataset_shape)}",
            )
        bindings[graph_input.name] = InputBinding(shape=dataset_shape)
    return bindings


def bind_outputs(output_specs: list[Any], target: dict[str, Any]) -> dict[str, list[int] | None]:
    """Map each model output to target columns (all of them when the model has one output)."""
    if len(output_specs) <= 1:
        return {spec.node: None for spec in output_specs}
    columns: list[str] = target.get("columns") or []
    if all(spec.columns is None for spec in output_specs):
        return _outputs_from_dataset([spec.node for spec in output_specs], columns, target["shape"])
    bound: dict[str, list[int] | None] = {}
    for index, spec in enumerate(output_specs):
        path = f"model.outputs[{index}]"
        if spec.columns is None:
            raise SpecError(
                f"{path}.columns",
                "with several outputs, each needs `columns`: the target columns it predicts",
            )
        for position, name in enumerate(spec.columns):
            if name not in columns:
                raise SpecError(
                    f"{path}.columns[{position}]",
                    f"no target column {name!r}; targets are: {', '.join(columns) or 'unnamed'}",
                )
        bound[spec.node] = [columns.index(name) for name in spec.columns]
    return bound


def _outputs_from_dataset(names: list[str], columns: list[str], shape: list[int]) -> dict[str, list[int] | None]:
    """Outputs that do not name their columns (a Keras config has no place for them): each takes
    the target column named like it, or else the target columns in output order, one each."""
    if columns and set(names) <= set(columns):
        return {name: [columns.index(name)] for name in names}
    width = len(columns) or (shape[0] if len(shape) == 1 else 1)
    if width == len(names):
        return {name: [index] for index, name in enumerate(names)}
    targets = ", ".join(columns) if columns else f"{width} unnamed column(s)"
    raise SpecError(
        "model.outputs",
        f"the model has {len(names)} outputs ({', '.join(names)}) but the dataset's target has "
        f"{targets}; name the target columns like the outputs, or have one target column per output "
        "(in output order), or give each output its `columns` in the graph form",
    )


def model_targets(y: np.ndarray, outputs: dict[str, list[int] | None]) -> Any:
    """The target as the model predicts it: whole, or the columns of each output."""
    if len(outputs) <= 1:
        return y
    return {
        name: y[:, indexes[0]] if len(indexes) == 1 else y[:, indexes] for name, indexes in outputs.items() if indexes
    }


@dataclass(frozen=True)
class Split:
    """Row indexes of each part, sorted (memory-mapped reads stay sequential)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_rows(n_rows: int, validation: float, test: float, seed: int, labels: np.ndarray | None = None) -> Split:
    """A seeded random split; with `labels` (class indexes), each class is split in the same
    proportions, so a rare class is not missing from validation or test."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n_rows)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for rows in groups:
        rows = rng.permutation(rows)
        n_test, n_validation = round(len(rows) * test), round(len(rows) * validation)
        parts[2].append(rows[:n_test])
        parts[1].append(rows[n_test : n_test + n_validation])
        parts[0].append(rows[n_test + n_validation :])
    train, validation_rows, test_rows = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return Split(train=train, validation=validation_rows, test=test_rows)


def take(arrays: Any, rows: np.ndarray) -> Any:
    """The given rows of an array, or of each array of a dict (several outputs)."""
    if isinstance(arrays, dict):
        return {name: np.asarray(a[rows]) for name, a in arrays.items()}
    return np.asarray(arrays[rows])


def apply_missing_policy(
    x: np.ndarray, y: Any, labels: np.ndarray | None, policy: Any
) -> tuple[np.ndarray, Any, np.ndarray | None, list[float] | None]:
    """Rows with empty numeric cells (NaN) dropped, or the cells filled; also returns the fill
    value of each column (None when rows were dropped), for predict to fill the same way."""
    missing = np.isnan(x)
    if not missing.any():
        return x, y, labels, None
    if policy == "reject":
        raise ValueError("the dataset has empty values: preprocessing.missing must say what to do with them")
    if policy == "drop":
        keep = np.flatnonzero(~missing.any(axis=tuple(range(1, x.ndim))))
        if keep.size == 0:
            raise ValueError("every row has an empty value: nothing is left to train on")
        return np.asarray(x[keep]), take(y, keep), None if labels is None else np.asarray(labels[keep]), None
    fills = np.nanmean(x, axis=0) if policy == "mean" else np.full(x.shape[1:], policy.constant, dtype=np.float64)
    fills = np.nan_to_num(fills)  # a column with no value at all fills with 0
    filled = np.where(missing, fills.astype(x.dtype), x)
    return filled, y, labels, [float(v) for v in np.ravel(fills)]
