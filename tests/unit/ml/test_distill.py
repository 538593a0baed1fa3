"""Distillation and gradient health in app.ml.training: the student learns from the teacher on
the durable path (performance auto), resumes exactly, and a NaN loss stops with advice."""

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from app.jobs.distill import distilled_lineage
from app.ml.builder import compile_single_output
from app.ml.data import save_arrays
from app.ml.distill import DistillationModel
from app.ml.gradient_health import TrainingDiverged, gradient_health
from app.ml.spec import TrainingSpec
from app.ml.training import StopReason, TrainingStopped, train
from tests.e2e.test_distill import blobs
from tests.factories import job_row
from tests.unit.ml.test_checkpoints import Recorder, assert_same_weights

FEATURES = {"shape": [8], "dtype": "float32"}
TARGET = {"shape": [], "dtype": "int64", "classes": [0, 1, 2, 3], "n_classes": 4}


def spec(hidden: int, distill: dict[str, Any] | None = None, **fit: Any) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {
                "layers": [
                    {"type": "Dense", "units": hidden, "activation": "relu"},
                    {"type": "Dense", "units": 4, "activation": "softmax"},
                ]
            },
            "compile": {
                "optimizer": {"type": "Adam", "learning_rate": 0.01},
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 6, "batch_size": 32, "seed": 3, "test_split": 0.2, **fit},
            "distill": distill,
        }
    )


DISTILL = {"teacher": {"model": "t", "version": 1}, "temperature": 3.0, "alpha": 0.2}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("blobs")
    x, y = blobs(600)
    save_arrays(directory, x, y)
    return directory


@pytest.fixture(scope="module")
def teacher(data: Path) -> keras.Model:
    recorder = Recorder()
    return train(spec(64), data, FEATURES, TARGET, recorder.progress).model


def test_the_student_learns_from_the_teacher_on_the_durable_path(
    data: Path, teacher: keras.Model, tmp_path: Path
) -> None:
    recorder = Recorder()
    logs: list[dict[str, Any]] = []
    recorder.progress._on_epoch = lambda epoch, row: logs.append(row)
    result = train(spec(8, DISTILL), data, FEATURES, TARGET, recorder.progress, recorder.run(tmp_path), teacher=teacher)
    assert result.model.count_params() < teacher.count_params() / 4
    assert result.final_logs["test_accuracy"] >= 0.9
    assert all(row["grad_norm"] > 0 and row["grad_nonfinite"] == 0.0 for row in logs)


def test_a_stopped_distillation_resumes_to_the_same_student(data: Path, teacher: keras.Model, tmp_path: Path) -> None:
    """Checkpoints of a distillation hold the student and its optimizer like any job's."""
    durable = spec(8, DISTILL, epochs=3, steps_per_execution=1)
    straight = Recorder()
    whole = train(durable, data, FEATURES, TARGET, straight.progress, straight.run(tmp_path / "a"), teacher=teacher)
    first = Recorder(("epoch", 1, StopReason.HAND_BACK))
    with pytest.raises(TrainingStopped):
        train(durable, data, FEATURES, TARGET, first.progress, first.run(tmp_path / "b"), teacher=teacher)
    from app.ml.checkpoints import latest_checkpoint

    second = Recorder()
    resumed = train(
        durable, data, FEATURES, TARGET, second.progress,
        second.run(tmp_path / "b", attempt=2, resume_from=latest_checkpoint(tmp_path / "b", max_attempt=2)),
        teacher=teacher,
    )  # fmt: skip
    assert second.epochs == [2, 3]
    assert_same_weights(resumed.model, whole.model)


def test_a_nan_loss_stops_naming_the_epoch_and_the_fixes(data: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(scale=1000.0, size=(256, 8)).astype(np.float32)
    save_arrays(tmp_path, x, (x @ np.ones(8)).astype(np.float32))
    diverging = TrainingSpec.model_validate(
        {
            "model": {"layers": [{"type": "Dense", "units": 16, "activation": "relu"}, {"type": "Dense", "units": 1}]},
            "compile": {"optimizer": {"type": "SGD", "learning_rate": 10.0}, "loss": "mse"},
            "fit": {"epochs": 20, "batch_size": 32},
        }
    )
    recorder = Recorder()
    regression = {"shape": [], "dtype": "float32", "classes": None, "n_classes": None}
    with pytest.raises(TrainingDiverged) as diverged:
        train(diverging, tmp_path, FEATURES, regression, recorder.progress, recorder.run(tmp_path / "ck"))
    epoch = recorder.epochs[-1]
    assert f"in epoch {epoch}" in str(diverged.value) and epoch < 20
    for fix in ("clipnorm", "learning rate (compile.optimizer.learning_rate, now 10.0)", "BatchNormalization"):
        assert fix in str(diverged.value)


def test_gradient_health_changes_no_state_and_counts_non_finite_values() -> None:
    x, y = blobs(32)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy")
    before = [np.array(w) for w in model.get_weights()]  # BatchNormalization statistics included
    norm, share = gradient_health(model, x, y)
    assert norm > 0 and share == 0.0
    for left, right in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(left, right)
    poisoned = x.copy()
    poisoned[0, 0] = np.nan
    norm, share = gradient_health(model, poisoned, y)
    assert share > 0 and not np.isfinite(norm)


def test_the_lineage_of_a_distilled_job_names_its_teacher_and_settings() -> None:
    distilled = job_row(
        spec=spec(8, {**DISTILL, "teacher": {"model": "t", "version": 2, "label": "prod"}}).model_dump(mode="json")
    )
    lineage = distilled_lineage(distilled)
    assert lineage is not None
    assert lineage.model_dump() == {
        "kind": "distilled",
        "source": {"model": "t", "version": 2},
        "settings": {"temperature": 3.0, "alpha": 0.2, "label": "prod"},
    }
    assert distilled_lineage(job_row(spec=spec(8).model_dump(mode="json", exclude={"distill"}))) is None


def test_the_loss_mixes_the_hard_loss_with_the_teachers_softened_targets_by_alpha() -> None:
    """Against the formula in numpy:
    alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(log t / T) || softmax(log s / T))."""
    x, y = blobs(16)

    def softmax_model(seed: int) -> keras.Model:
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="softmax")])

    student, teacher = softmax_model(1), softmax_model(2)
    wrapper = DistillationModel(student, teacher, temperature=2.5, alpha=0.3)
    compile_single_output(wrapper, TrainingSpec.model_validate(spec(8).model_dump()).compile, 1)
    s = np.asarray(student.predict(x, verbose=0), dtype=np.float64)
    t = np.asarray(teacher.predict(x, verbose=0), dtype=np.float64)
    loss = float(
        keras.ops.convert_to_numpy(
            wrapper.compute_loss(x=x, y=y, y_pred=keras.ops.convert_to_tensor(s.astype(np.float32)))
        )
    )

    def soften(p: np.ndarray) -> np.ndarray:
        z = np.log(p) / 2.5
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    hard = -np.mean(np.log(s[np.arange(16), y]))
    kl = np.mean(np.sum(soften(t) * (np.log(soften(t)) - np.log(soften(s))), axis=1))
    np.testing.assert_allclose(loss, 0.3 * hard + 0.7 * 2.5**2 * kl, rtol=1e-4)
