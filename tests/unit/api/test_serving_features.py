"""Serving features over HTTP against real models: a full queue, per-model batching, the Keras
runtime, and the artifact download."""

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.main import create_app
from app.serving.service import ServingService
from tests.factories import register_version, seed_mlp, wait_for

# `held` batches up to 2 rows and waits a minute for a batch to fill; at most 2 rows may wait.
# `quick` has the process-wide settings: no waiting.
HELD = {"max_batch_size": 2, "max_latency_ms": 60_000, "max_queued_rows": 2}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving-home")


@pytest.fixture(scope="module")
def models(home: Path) -> dict[str, object]:
    settings = Settings(home=home)
    upgrade_to_head(settings)
    made = {
        "held": seed_mlp(features=4, classes=3, hidden=8, seed=1),
        "quick": seed_mlp(features=4, classes=3, hidden=8, seed=2),
        "by-keras": seed_mlp(features=4, classes=3, hidden=8, seed=3),
    }
    register_version(settings, "held", made["held"])
    register_version(settings, "quick", made["quick"])
    register_version(settings, "by-keras", made["by-keras"], onnx=False)  # as when ONNX export fails
    return made


@pytest.fixture
def client(home: Path, models: dict[str, object]) -> Iterator[TestClient]:
    settings = Settings(home=home, model_batching={"held": HELD})  # validated, as from the env
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


def predict(client: TestClient, path: str, rows: np.ndarray) -> httpx.Response:
    return client.post(f"/v1/models/{path}:predict", json={"instances": rows.tolist()})


def expected(model: object, rows: np.ndarray) -> np.ndarray:
    return np.asarray(model(rows))  # type: ignore[operator]


def test_a_full_model_queue_is_a_429_and_batching_is_per_model(client: TestClient, models: dict[str, object]) -> None:
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(size=(n, 4)).astype(np.float32) for n in (1, 2, 1))
    serving: ServingService = client.app.state.serving  # type: ignore[attr-defined]
    # Load `held` with a request that fills its batch (so it does not wait for the window).
    assert predict(client, "held", rng.normal(size=(2, 4)).astype(np.float32)).status_code == 200
    held = serving.cache.peek(("held", 1))
    assert held is not None

    answers: dict[str, httpx.Response] = {}
    first = threading.Thread(target=lambda: answers.setdefault("a", predict(client, "held", a)))
    first.start()
    try:
        # One row waits in `held`'s queue for company; `quick` meanwhile answers at once.
        wait_for(lambda: held.batcher.queued_rows == 1, 30, interval=0.01, what="a row waiting in held's batch")
        quick = predict(client, "quick", a)
        assert quick.status_code == 200
        np.testing.assert_allclose(quick.json()["predictions"], expected(models["quick"], a), atol=1e-5)

        full = predict(client, "held", b)  # 1 waiting + 2 > max_queued_rows
        assert full.status_code == 429, full.text
        assert full.headers["retry-after"] == "1"
        assert "queue is full" in full.json()["error"]

        completing = predict(client, "held", c)  # 1 + 1 rows: the batch is full and runs now
    finally:
        first.join(timeout=90)
    assert completing.status_code == 200 and answers["a"].status_code == 200
    np.testing.assert_allclose(answers["a"].json()["predictions"], expected(models["held"], a), atol=1e-5)
    np.testing.assert_allclose(completing.json()["predictions"], expected(models["held"], c), atol=1e-5)


def test_a_version_registered_for_the_keras_runtime_is_served_by_keras(
    client: TestClient, models: dict[str, object]
) -> None:
    rows = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)

    metadata = client.get("/v1/models/by-keras/metadata").json()["metadata"]
    response = predict(client, "by-keras", rows)
    infer = client.post(
        "/v2/models/by-keras/infer",
        json={"inputs": [{"name": "features", "shape": [3, 4], "datatype": "FP32", "data": rows.ravel().tolist()}]},
    )

    assert metadata["serving"]["runtime"] == "keras"
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], expected(models["by-keras"], rows), atol=1e-5)
    assert infer.status_code == 200, infer.text
    (output,) = infer.json()["outputs"]
    np.testing.assert_allclose(
        np.reshape(output["data"], output["shape"]), expected(models["by-keras"], rows), atol=1e-5
    )


def test_the_artifact_download_is_the_registered_keras_file(
    client: TestClient, home: Path, models: dict[str, object], tmp_path: Path
) -> None:
    import keras

    response = client.get("/v1/models/quick/versions/1/artifact")

    assert response.status_code == 200
    assert 'filename="quick-v1.keras"' in response.headers["content-disposition"]
    downloaded = tmp_path / "downloaded.keras"
    downloaded.write_bytes(response.content)
    rows = np.random.default_rng(2).normal(size=(2, 4)).astype(np.float32)
    reloaded = keras.saving.load_model(downloaded, safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(reloaded(rows)), expected(models["quick"], rows), atol=1e-6)

    assert client.get("/v1/models/quick/versions/2/artifact").status_code == 404
    for path in Settings(home=home).artifacts_dir.rglob("model.keras"):
        if path.read_bytes() == response.content:
            path.unlink()  # a store that lost the file: 404 saying so, not a 500
    missing = client.get("/v1/models/quick/versions/1/artifact")
    assert missing.status_code == 404 and "missing from the store" in missing.json()["error"]
