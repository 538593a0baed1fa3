"""Permutation importance of a trained tabular model, computed by the worker after training.

Each feature column of the held-out rows (the test split, else the validation split) is
shuffled in turn, `repeats` times; a column's importance is how much the model's loss rises
then, with its spread over the repeats. scikit-learn does the shuffling and bookkeeping
(`sklearn.inspection.permutation_importance`); the score is the model's own loss.
"""

from dataclasses import dataclass
from typing import Any, Literal

import keras
import numpy as np


@dataclass(frozen=True)
class FeatureImportance:
    name: str
    importance: float  # mean rise of the loss when the column is shuffled
    std: float  # its spread over the repeats


@dataclass(frozen=True)
class Importance:
    """What `/importance` answers (app.explain.schemas.Importance validates it)."""

    metric: str
    split: Literal["test", "validation"]
    rows: int
    repeats: int
    features: list[FeatureImportance]


@dataclass(frozen=True)
class NoImportance:
    """Stored instead when none could be computed: why."""

    reason: str


REPEATS = 5
MAX_ROWS = 2000  # held-out rows scored per shuffle: enough for a stable mean, bounded in time


@dataclass
class _Scored:
    """The trained model as scikit-learn's scorer sees it: scored, never fitted."""

    model: Any
    loss: Any

    def fit(self, *_: Any) -> None:  # permutation_importance asks that estimators have one
        raise NotImplementedError("the model is trained by trainyard, not scikit-learn")

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        predicted = self.model.predict_on_batch(x)  # one compiled step: held-out rows are few
        return -float(np.mean(keras.ops.convert_to_numpy(self.loss(y, predicted))))


def permutation_importance(
    model: Any,
    loss: Any,
    columns: list[str] | None,
    rows: np.ndarray,
    targets: Any,
    split: Literal["test", "validation"],
    seed: int,
) -> Importance | NoImportance:
    """Importance of each feature column of `rows` for `model` (its `loss` as the metric)."""
    from sklearn.inspection import permutation_importance as shuffled  # in the worker only

    if not columns:
        return NoImportance(reason="the model does not take named feature columns (importance is per column)")
    if len(model.inputs) != 1 or len(model.outputs) != 1 or not isinstance(targets, np.ndarray):
        return NoImportance(reason="importance is computed for models with one input and one output")
    if rows.ndim != 2 or rows.shape[1] != len(columns):
        return NoImportance(reason="the model does not take the dataset's rows whole")
    if len(rows) < 2:
        return NoImportance(reason=f"the {split} split has fewer than 2 rows")
    picked = np.random.default_rng(seed).permutation(len(rows))[:MAX_ROWS]
    x, y = np.asarray(rows[picked], dtype="float32"), np.asarray(targets[picked])
    scored = _Scored(model, keras.losses.get(loss))
    result = shuffled(
        scored, x, y, scoring=lambda estimator, x_, y_: estimator.score(x_, y_), n_repeats=REPEATS, random_state=seed
    )
    return Importance(
        metric=f"loss ({_loss_name(loss)})",
        split=split,
        rows=len(x),
        repeats=REPEATS,
        features=[
            FeatureImportance(name=name, importance=float(mean), std=float(std))
            for name, mean, std in zip(columns, result.importances_mean, result.importances_std, strict=True)
        ],
    )


def _loss_name(loss: Any) -> str:
    return loss if isinstance(loss, str) else getattr(loss, "name", type(loss).__name__)
