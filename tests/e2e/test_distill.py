"""Over HTTP against the embedded `trainyard serve`: a teacher trained, distilled into a student
a quarter its size that serves; teachers that cannot teach refused at the door naming the field;
gradient health in every epoch row; a diverging job failed with advice naming the epoch."""

from typing import Any

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import Server
from tests.factories import csv_bytes, npz_bytes, wait_for

pytestmark = pytest.mark.e2e

FEATURES, CLASSES = 8, 4
COMPILE = {
    "optimizer": {"type": "Adam", "learning_rate": 0.01},
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
}


def blobs(rows: int, features: int = FEATURES, classes: int = CLASSES, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Separable classes: a teacher and its student both learn them in a few epochs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, features))
    y = rng.integers(0, classes, rows)
    return (centres[y] + rng.normal(size=(rows, features))).astype(np.float32), y.astype(np.int64)


def upload(server: Server, name: str, data: bytes) -> str:
    response = httpx.post(f"{server.url}/v1/datasets", files={"file": (name, data)}, timeout=30)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def mlp(hidden: int, classes: int = CLASSES) -> dict[str, Any]:
    return {
        "layers": [
            {"type": "Dense", "units": hidden, "activation": "relu"},
            {"type": "Dense", "units": classes, "activation": "softmax"},
        ]
    }


def post_job(server: Server, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/jobs", params={"view": "full"}, json=body, timeout=60)  # with its spec


def finished(server: Server, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = httpx.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled", "timed_out") else None

    return wait_for(done, timeout=300, interval=0.5, what=f"job {job_id} to finish")


def params(server: Server, name: str, version: int) -> int:
    """The model's parameter count, from the artifact the registry serves."""
    import io
    import tempfile

    import keras

    response = httpx.get(f"{server.url}/v1/models/{name}/versions/{version}/artifact", timeout=30)
    assert response.status_code == 200
    with tempfile.NamedTemporaryFile(suffix=".keras") as handle:
        handle.write(io.BytesIO(response.content).read())
        handle.flush()
        return int(keras.saving.load_model(handle.name, compile=False).count_params())


def distill_body(dataset_id: str, teacher: dict[str, Any], **fit: Any) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "model": mlp(8),
        "compile": COMPILE,
        "fit": {"epochs": 4, "batch_size": 32, "test_split": 0.2, "seed": 1, **fit},
        "distill": {"teacher": teacher, "temperature": 3.0, "alpha": 0.2},
        "register_as": "distill-student",
    }


def test_a_teacher_distils_into_a_quarter_size_student_that_serves(server: Server) -> None:
    x, y = blobs(600)
    dataset = upload(server, "distill-blobs.npz", npz_bytes(x=x, y=y))
    teacher = post_job(
        server,
        {
            "dataset_id": dataset,
            "model": mlp(64),
            "compile": COMPILE,
            "fit": {"epochs": 4, "batch_size": 32, "test_split": 0.2, "seed": 1},
            "register_as": "distill-teacher",
        },
    )
    assert teacher.status_code == 202, teacher.text
    taught = finished(server, teacher.json()["id"])
    assert taught["status"] == "succeeded", taught["error"]
    version = taught["model"]["version"]
    labelled = httpx.put(f"{server.url}/v1/models/distill-teacher/labels/best", json={"version": version}, timeout=10)
    assert labelled.status_code == 200, labelled.text

    job = post_job(server, distill_body(dataset, {"model": "distill-teacher", "label": "best"}))
    assert job.status_code == 202, job.text
    assert job.json()["spec"]["distill"]["teacher"] == {"model": "distill-teacher", "version": version, "label": "best"}
    student = finished(server, job.json()["id"])
    assert student["status"] == "succeeded", student["error"]

    teacher_params = params(server, "distill-teacher", version)
    student_params = params(server, "distill-student", student["model"]["version"])
    assert student_params <= teacher_params / 4
    # The classes separate: the student reaches the teacher's held-out accuracy, near enough.
    assert student["metrics"]["test_accuracy"] >= 0.9 * taught["metrics"]["test_accuracy"]

    # The student's version says where it came from, and carries its bill (held-out accuracy,
    # size, serving latency) for a comparison with its teacher.
    registered = httpx.get(
        f"{server.url}/v1/models/distill-student/versions/{student['model']['version']}", timeout=10
    ).json()["model_version_status"][0]
    assert registered["lineage"] == {
        "kind": "distilled",
        "source": {"model": "distill-teacher", "version": version},
        "settings": {"temperature": 3.0, "alpha": 0.2, "label": "best"},
    }, registered["lineage"]
    assert registered["bill"]["params"] == student_params and registered["bill"]["artifact_bytes"] > 0
    assert registered["bill"]["metrics"]["accuracy"] == pytest.approx(student["metrics"]["test_accuracy"], abs=0.02)

    predicted = httpx.post(
        f"{server.url}/v1/models/distill-student:predict", json={"instances": x[:5].tolist()}, timeout=30
    )
    assert predicted.status_code == 200, predicted.text
    assert len(predicted.json()["predictions"]) == 5

    # Gradient health is in every epoch's row, teacher and student alike.
    for job_id in (taught["id"], student["id"]):
        epochs = httpx.get(f"{server.url}/v1/jobs/{job_id}/metrics", timeout=10).json()["epochs"]
        assert len(epochs) == 4
        for row in epochs:
            assert isinstance(row["grad_norm"], float) and row["grad_norm"] > 0
            assert row["grad_nonfinite"] == 0.0

    refusals = {
        "unknown teacher": (distill_body(dataset, {"model": "no-such-teacher", "version": 1}), "distill.teacher.model"),
        "unknown label": (
            distill_body(dataset, {"model": "distill-teacher", "label": "nope"}),
            "distill.teacher.label",
        ),
        "unknown version": (
            distill_body(dataset, {"model": "distill-teacher", "version": 99}),
            "distill.teacher.version",
        ),
        "neither": (distill_body(dataset, {"model": "distill-teacher"}), "distill.teacher"),
    }
    x5, y5 = blobs(200, features=5)
    refusals["shape mismatch"] = (
        distill_body(
            upload(server, "distill-5.npz", npz_bytes(x=x5, y=y5)), {"model": "distill-teacher", "version": version}
        ),
        "distill.teacher",
    )
    x3, y3 = blobs(200, classes=3)
    three = distill_body(
        upload(server, "distill-3.npz", npz_bytes(x=x3, y=y3)), {"model": "distill-teacher", "version": version}
    )
    three["model"] = mlp(8, classes=3)
    refusals["output mismatch"] = (three, "distill.teacher")
    named = csv_bytes(rows=100, features=FEATURES, classes=CLASSES, labels=["ant", "bee", "cat", "dog"], seed=5)
    refusals["label mismatch"] = (
        distill_body(
            upload(server, "distill-named.csv", named),
            {"model": "distill-teacher", "version": version},
        ),
        "distill.teacher",
    )
    for case, (body, field) in refusals.items():
        response = post_job(server, body)
        assert response.status_code == 422, (case, response.text)
        error = response.json()
        assert field in error["error"], (case, error)
        assert ".".join(str(part) for part in error["detail"][0]["loc"]).endswith(field), (case, error)


def test_a_diverging_job_fails_naming_the_epoch_and_the_fixes(server: Server) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(scale=1000.0, size=(256, 4)).astype(np.float32)
    y = (x @ rng.normal(size=4)).astype(np.float32)
    dataset = upload(server, "diverge.npz", npz_bytes(x=x, y=y))
    job = post_job(
        server,
        {
            "dataset_id": dataset,
            "model": {"layers": [{"type": "Dense", "units": 16, "activation": "relu"}, {"type": "Dense", "units": 1}]},
            "compile": {"optimizer": {"type": "SGD", "learning_rate": 10.0}, "loss": "mse"},
            "fit": {"epochs": 20, "batch_size": 32},
        },
    )
    assert job.status_code == 202, job.text
    failed = finished(server, job.json()["id"])
    assert failed["status"] == "failed"
    error = failed["error"]
    epochs = httpx.get(f"{server.url}/v1/jobs/{failed['id']}/metrics", timeout=10).json()["epochs"]
    last = epochs[-1]["epoch"]
    assert f"in epoch {last}" in error, error
    assert epochs[-1]["loss"] in ("nan", "inf"), epochs[-1]
    assert last < 20  # stopped there, not trained on garbage to the end
    for fix in ("clipnorm", "learning rate", "BatchNormalization"):
        assert fix in error, error
    assert "Traceback" not in error
