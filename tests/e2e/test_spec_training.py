"""Over HTTP against an embedded `trainyard serve`: the model families users bring all train."""

import json
from typing import Any

import httpx
import keras
import numpy as np
import pytest

from tests.e2e.conftest import Server
from tests.factories import csv_bytes, npz_bytes, wait_for
from tests.unit.ml.catalog_examples import OPTIMIZER_OBJECTS

pytestmark = pytest.mark.e2e
SOFTMAX_3 = {"type": "Dense", "units": 3, "activation": "softmax"}


def upload(server: Server, name: str, data: bytes) -> str:
    response = httpx.post(f"{server.url}/v1/datasets", files={"file": (name, data)}, timeout=30)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submit(server: Server, dataset_id: str, model: dict[str, Any], optimizer: Any = "adam") -> str:
    body = {
        "dataset_id": dataset_id,
        "model": model,
        "compile": {"optimizer": optimizer, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 1, "batch_size": 8},
    }
    response = httpx.post(f"{server.url}/v1/jobs", json=body, timeout=60)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_all(server: Server, job_ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    def finished() -> dict[str, dict[str, Any]] | None:
        jobs = {label: httpx.get(f"{server.url}/v1/jobs/{job_id}").json() for label, job_id in job_ids.items()}
        done = all(job["status"] in ("succeeded", "failed", "cancelled") for job in jobs.values())
        return jobs if done else None

    return wait_for(finished, timeout=600, interval=1.0, what="all jobs to finish")


def test_cnns_recurrent_nets_graphs_keras_configs_and_every_optimizer_train(server: Server) -> None:
    rng = np.random.default_rng(0)
    images = upload(
        server, "images.npz", npz_bytes(x=rng.integers(0, 255, (32, 8, 8, 1), dtype=np.uint8), y=rng.integers(0, 3, 32))
    )
    sequences = upload(
        server, "seq.npz", npz_bytes(x=rng.random((32, 5, 3), dtype=np.float32), y=rng.integers(0, 3, 32))
    )
    table = upload(server, "table.csv", csv_bytes(rows=32))
    keras_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )

    jobs = {
        "cnn": submit(server, images, {"layers": [
            {"type": "Rescaling", "scale": 1 / 255},
            {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
            {"type": "MaxPooling2D"}, {"type": "Flatten"}, SOFTMAX_3]}),
        "lstm": submit(server, sequences, {"layers": [{"type": "LSTM", "units": 4}, SOFTMAX_3]}),
        "gru": submit(server, sequences, {"layers": [
            {"type": "Bidirectional", "layer": {"type": "GRU", "units": 4}}, SOFTMAX_3]}),
        "two-branch": submit(server, table, {
            "inputs": [{"name": "wide", "columns": ["f0", "f1"]}, {"name": "deep", "columns": ["f2", "f3"]}],
            "layers": [
                {"type": "Dense", "name": "deep_hidden", "units": 8, "activation": "relu", "inputs": ["deep"]},
                {"type": "Concatenate", "name": "joined", "inputs": ["wide", "deep_hidden"]},
                {"type": "Dense", "name": "out", "units": 3, "activation": "softmax"},
            ],
            "outputs": ["out"]}),
        "keras-config": submit(server, table, {"keras_config": json.loads(keras_model.to_json())}),
    }  # fmt: skip
    mlp = {"layers": [{"type": "Dense", "units": 8, "activation": "relu"}, SOFTMAX_3]}
    for optimizer in OPTIMIZER_OBJECTS:  # names and more variants train in tests/unit/ml/test_layers.py
        jobs[f"optimizer {json.dumps(optimizer)}"] = submit(server, table, mlp, optimizer)

    finished = wait_all(server, jobs)

    failed = {label: job["error"] for label, job in finished.items() if job["status"] != "succeeded"}
    assert failed == {}
    assert all(job["model"] is not None for job in finished.values())
