"""Over HTTP with the embedded worker: Keras's own models, as Keras users write them, train and
predict; a large spec that cannot train is refused by the worker's first step, naming the field."""

import json
import re
from typing import Any

import httpx
import keras
import numpy as np
import pytest

from tests.e2e.conftest import Server
from tests.e2e.test_spec_training import upload, wait_all
from tests.factories import npz_bytes

pytestmark = pytest.mark.e2e
IMAGE = (32, 32, 3)


def submit(server: Server, dataset_id: str, model: keras.Model, loss: str, name: str) -> str:
    body = {
        "name": name,
        "dataset_id": dataset_id,
        "model": {"keras_config": json.loads(model.to_json())},
        "compile": {"optimizer": "adam", "loss": loss},
        "fit": {"epochs": 1, "batch_size": 8},
    }
    response = httpx.post(f"{server.url}/v1/jobs", json=body, timeout=30)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def predict(server: Server, name: str, instances: Any) -> Any:
    response = httpx.post(f"{server.url}/v1/models/{name}:predict", json={"instances": instances}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def two_output_model() -> keras.Model:
    """Ops from `+` and `*`, a shared layer called twice, two named outputs."""
    features = keras.Input((4,), name="features")
    shared = keras.layers.Dense(8, name="shared")
    hidden = keras.ops.relu(shared(features) + 1.0) * 0.5
    again = shared(features * 2.0)
    joined = keras.layers.Concatenate(name="joined")([hidden, again])
    price = keras.layers.Dense(1, name="price")(joined)
    score = keras.layers.Dense(1, name="score")(joined)
    return keras.Model(features, [price, score])


def transfer_model() -> keras.Model:
    """The transfer-learning shape: a frozen keras.applications base inside a Sequential."""
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=IMAGE, alpha=0.35)
    base.trainable = False
    return keras.Sequential(
        [keras.Input(IMAGE), base, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")]
    )


@pytest.mark.timeout(900)  # four jobs in one embedded worker; each trained one also exports to ONNX (~40 s here)
def test_keras_applications_a_nested_base_and_a_two_output_model_train_and_predict(server: Server) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((16, *IMAGE), dtype=np.float32) * 255
    images = upload(server, "zoo.npz", npz_bytes(x=x, y=rng.integers(0, 3, 16)))
    table = rng.normal(size=(24, 4)).astype(np.float32)
    rows = ["f0,f1,f2,f3,price,score"] + [
        ",".join(f"{v:.4f}" for v in (*row, row.sum(), row[0] - row[1])) for row in table
    ]
    response = httpx.post(
        f"{server.url}/v1/datasets",
        files={"file": ("two.csv", "\n".join(rows).encode())},
        data={"target": "price,score"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    two_targets = str(response.json()["id"])
    sparse = "sparse_categorical_crossentropy"
    jobs = {
        "small": submit(
            server,
            images,
            keras.applications.MobileNetV3Small(weights=None, input_shape=IMAGE, classes=3),
            sparse,
            "zoo-small",
        ),
        "transfer": submit(server, images, transfer_model(), sparse, "zoo-transfer"),
        "two-outputs": submit(server, two_targets, two_output_model(), "mse", "zoo-two"),
        # 10 classes on 3-class labels: too large for the door's build, so the worker's first step says so.
        "wrong-units": submit(
            server,
            images,
            keras.applications.MobileNetV3Small(weights=None, input_shape=IMAGE, classes=10),
            sparse,
            "zoo-wrong",
        ),
    }

    finished = wait_all(server, jobs)

    wrong = finished.pop("wrong-units")
    assert wrong["status"] == "failed"
    assert re.fullmatch(
        r"model\.layers\[\d+\]: the output layer has 10 units but the labels have 3 classes; use 3 units",
        wrong["error"],
    ), wrong["error"]
    failed = {label: job["error"] for label, job in finished.items() if job["status"] != "succeeded"}
    assert failed == {}
    for label in ("small", "transfer"):
        probabilities = predict(server, finished[label]["model"]["name"], x[:2].tolist())
        assert np.asarray(probabilities).shape == (2, 3)
        assert np.allclose(np.sum(probabilities, axis=1), 1.0, atol=1e-4)
    two = predict(server, "zoo-two", table[:2].tolist())
    assert [sorted(row) for row in two] == [["price", "score"]] * 2
