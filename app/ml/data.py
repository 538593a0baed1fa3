"""Stored dataset arrays → what `model.fit` takes, with labels encoded the way the loss needs."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FEATURES_FILE = "features.npy"
TARGET_FILE = "target.npy"


@dataclass(frozen=True)
class TrainingArrays:
    x: np.ndarray
    y: np.ndarray


def load_arrays(dataset_dir: Path, loss: str, n_classes: int | None) -> TrainingArrays:
    """Memory-map the stored arrays (no copy per job) and encode labels for `loss`.

    `categorical_crossentropy` wants one-hot rows; datasets store class indices, so they are
    expanded here rather than asking users to one-hot by hand.
    """
    x = np.load(dataset_dir / FEATURES_FILE, mmap_mode="r", allow_pickle=False)
    y = np.load(dataset_dir / TARGET_FILE, mmap_mode="r", allow_pickle=False)
    if loss == "categorical_crossentropy" and y.ndim == 1 and n_classes:
        y = one_hot(np.asarray(y), n_classes)
    return TrainingArrays(x=x, y=y)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    encoded = np.zeros((labels.shape[0], n_classes), dtype=np.float32)
    encoded[np.arange(labels.shape[0]), labels.astype(np.int64)] = 1.0
    return encoded


def save_arrays(dataset_dir: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.save(dataset_dir / FEATURES_FILE, x, allow_pickle=False)
    np.save(dataset_dir / TARGET_FILE, y, allow_pickle=False)
