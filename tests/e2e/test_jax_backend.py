"""The JAX backend end to end: `trainyard serve` whose worker trains with KERAS_BACKEND=jax on two
forced host devices (XLA_FLAGS), told its device list; the layer families, the README's quick
start and a 2-device data-parallel job train; a model trained there is served by a
`--serving-only` process that cannot import TensorFlow, with the answers the Keras model gives.

The embedded worker inherits `serve`'s environment, so the API process validates specs on JAX too.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import keras
import numpy as np
import pytest

from app.config import Settings
from tests.e2e.conftest import UPLOAD_LIMIT, Server, free_port, wait_until_ready
from tests.e2e.test_quickstart import (  # noqa: F401  (run again here, on the JAX worker)
    test_the_readme_quickstart_trains_the_classic_example_and_predicts,
)
from tests.e2e.test_spec_training import SOFTMAX_3, upload, wait_all
from tests.factories import csv_bytes, npz_bytes
from tests.services import TrainyardProcess

pytest.importorskip("jax", reason="the [jax] extra is not installed")
pytestmark = pytest.mark.e2e

JAX_ENV = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
MLP = {"layers": [{"type": "Dense", "units": 8, "activation": "relu"}, SOFTMAX_3]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`serve` with its worker on JAX, two CPU devices, told its devices (one child gets both)."""
    home = Path(tmp_path_factory.mktemp("jax-home"))
    settings = Settings(home=home, max_upload_bytes=UPLOAD_LIMIT, worker_devices="0,1")
    port = free_port()
    process = TrainyardProcess(["serve", "--port", str(port)], settings, home.parent / "serve.log", JAX_ENV)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/readyz")
        process.wait_for_log("child ready", timeout=120)
        assert " on jax, devices 0,1" in process.log()
        yield Server(url=url, settings=settings, process=process)
    finally:
        process.stop()


def submit(server: Server, dataset_id: str, model: dict[str, Any], **request: Any) -> str:
    body = {
        "dataset_id": dataset_id,
        "model": model,
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 1, "batch_size": 8},
    } | request
    response = httpx.post(f"{server.url}/v1/jobs", json=body, timeout=60)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.mark.timeout(600)
def test_each_layer_family_trains_on_jax(server: Server) -> None:
    rng = np.random.default_rng(0)
    images = upload(
        server, "images.npz", npz_bytes(x=rng.integers(0, 255, (32, 8, 8, 1), dtype=np.uint8), y=rng.integers(0, 3, 32))
    )
    sequences = upload(
        server, "seq.npz", npz_bytes(x=rng.random((32, 5, 3), dtype=np.float32), y=rng.integers(0, 3, 32))
    )
    table = upload(server, "table.csv", csv_bytes(rows=32))
    sgd = {"type": "SGD", "learning_rate": 0.01, "momentum": 0.9, "clipnorm": 1.0}

    # One job per family, several families per job: each job costs a fresh process and an export.
    jobs = {
        "convolution, normalization, pooling, dropout": submit(server, images, {"layers": [
            {"type": "Rescaling", "scale": 1 / 255},
            {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
            {"type": "BatchNormalization"},
            {"type": "MaxPooling2D"}, {"type": "Flatten"}, {"type": "Dropout", "rate": 0.2}, SOFTMAX_3]}),
        "recurrent, wrappers, layer normalization": submit(server, sequences, {"layers": [
            {"type": "Bidirectional", "layer": {"type": "GRU", "units": 4, "return_sequences": True}},
            {"type": "LayerNormalization"},
            {"type": "LSTM", "units": 4}, SOFTMAX_3]}),
        "graph, merge, adapted preprocessing, SGD": submit(server, table, {
            "inputs": [{"name": "wide", "columns": ["f0", "f1"]}, {"name": "deep", "columns": ["f2", "f3"]}],
            "layers": [
                {"type": "Dense", "name": "deep_hidden", "units": 8, "activation": "relu", "inputs": ["deep"]},
                {"type": "Concatenate", "name": "joined", "inputs": ["wide", "deep_hidden"]},
                {"type": "Dense", "name": "out", "units": 3, "activation": "softmax"},
            ],
            "outputs": ["out"]},
            compile={"optimizer": sgd, "loss": "sparse_categorical_crossentropy"},
            preprocessing={"standardize": True}),
    }  # fmt: skip

    finished = wait_all(server, jobs)

    failed = {label: job["error"] for label, job in finished.items() if job["status"] != "succeeded"}
    assert failed == {}
    assert {job["resources"]["backend"] for job in finished.values()} == {"jax"}


@pytest.fixture(scope="module")
def data_parallel_jobs(server: Server) -> dict[str, dict[str, Any]]:
    """The same seeded fit on one device and on two; and on two with rows that do not split."""
    table = upload(server, "dp.csv", csv_bytes(rows=64, seed=3))
    odd = upload(server, "dp-odd.csv", csv_bytes(rows=65, seed=4))
    fit = {"epochs": 3, "batch_size": 8, "seed": 7}
    jobs = {
        "one": submit(server, table, MLP, fit=fit),
        "two": submit(server, table, MLP, fit=fit, resources={"gpus": 2}),
        "odd": submit(
            server, odd, MLP, fit=fit | {"validation_split": 0.2}, resources={"gpus": 2}, register_as="jax-dp"
        ),
    }
    return wait_all(server, jobs)


@pytest.mark.timeout(600)
def test_two_devices_train_data_parallel_to_the_results_of_one(data_parallel_jobs: dict[str, dict[str, Any]]) -> None:
    finished = data_parallel_jobs
    assert {label: job["status"] for label, job in finished.items()} == dict.fromkeys(finished, "succeeded"), finished
    one, two, odd_rows = finished["one"], finished["two"], finished["odd"]
    assert one["resources"]["strategy"] == "single" and one["resources"]["replicas"] == 1
    assert two["resources"]["strategy"] == "DataParallel" and two["resources"]["devices"] == ["cpu:0", "cpu:1"]
    assert two["resources"]["replicas"] == 2  # the trained weights live on both devices
    assert two["resources"]["rows_left_out"] == {}
    fused = two["performance"]["fused_steps"]  # Keras's distributed step, not our one-device loop
    assert fused["value"] is False and "data-parallel over 2 devices" in fused["reason"]
    # The same global batches, split over two devices: the same fit, up to float summation order.
    for name in ("loss", "accuracy"):
        assert two["metrics"][name] == pytest.approx(one["metrics"][name], rel=1e-3, abs=1e-4)
    # 65 rows: a row is left out of each part whose count is odd, so every batch splits in two.
    left_out = odd_rows["resources"]["rows_left_out"]
    assert left_out and set(left_out) <= {"training", "validation"} and all(n == 1 for n in left_out.values())


@pytest.fixture(scope="module")
def no_tensorflow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which `import tensorflow` fails: a shadowing package on PYTHONPATH."""
    shim = Path(tmp_path_factory.mktemp("no-tensorflow"))
    (shim / "tensorflow").mkdir()
    (shim / "tensorflow" / "__init__.py").write_text('raise ImportError("TensorFlow is blocked in this process")\n')
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))}
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=os.environ | env, capture_output=True)
    assert probe.returncode != 0 and b"blocked" in probe.stderr
    return env


@pytest.mark.timeout(600)
def test_a_model_trained_on_jax_is_served_without_tensorflow_with_the_same_answers(
    server: Server, data_parallel_jobs: dict[str, dict[str, Any]], no_tensorflow: dict[str, str], tmp_path: Path
) -> None:
    assert data_parallel_jobs["odd"]["model"] == {"name": "jax-dp", "version": 1}
    rows = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    # The Keras model as trained (data-parallel, on JAX), loaded here on TensorFlow.
    artifact = tmp_path / "model.keras"
    artifact.write_bytes(httpx.get(f"{server.url}/v1/models/jax-dp/versions/1/artifact", timeout=30).content)
    expected = keras.ops.convert_to_numpy(keras.saving.load_model(artifact)(rows))

    port = free_port()
    serving = TrainyardProcess(
        ["serve", "--serving-only", "--port", str(port)], server.settings, tmp_path / "serving.log", no_tensorflow
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(serving, f"{url}/v2/health/ready")
        metadata = httpx.get(f"{url}/v1/models/jax-dp/metadata", timeout=30).json()
        served = httpx.post(f"{url}/v1/models/jax-dp:predict", json={"instances": rows.tolist()}, timeout=60)
    finally:
        serving.stop()

    assert metadata["metadata"]["serving"]["runtime"] == "onnx"
    assert served.status_code == 200, served.text + serving.log()[-3000:]
    np.testing.assert_allclose(np.array(served.json()["predictions"]), expected, rtol=1e-4, atol=1e-5)
