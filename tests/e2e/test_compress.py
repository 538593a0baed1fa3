"""Compression jobs over HTTP on the embedded service (`trainyard serve`, SQLite, its own
worker): int8, float16 and prune each register a servable version with its lineage and bill,
the compare endpoint puts two bills side by side, and bad requests are 4xx naming the field."""

from typing import Any

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import Server
from tests.factories import csv_bytes, job_request, wait_for

pytestmark = pytest.mark.e2e
FINAL = ("succeeded", "failed", "cancelled", "timed_out")
SOURCE = "cmp-src"
FEATURES = 16
CLASSES = 4


def finished(server: Server, job_id: str, timeout: float = 240) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        job: dict[str, Any] = httpx.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json()
        return job if job["status"] in FINAL else None

    return wait_for(final, timeout=timeout, interval=0.5, what=f"job {job_id} to finish")


def compress(server: Server, version: int, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/{SOURCE}/versions/{version}/compress", json=body, timeout=30)


@pytest.fixture(scope="module")
def source(server: Server) -> dict[str, Any]:
    """A trained MLP (16 → 256 → 4) with a held-out test split: version 1 of `cmp-src`."""
    data = csv_bytes(rows=500, features=FEATURES, classes=CLASSES, seed=4411)
    upload = httpx.post(f"{server.url}/v1/datasets", files={"file": ("cmp.csv", data)}, timeout=60)
    assert upload.status_code in (200, 201), upload.text
    request = job_request(
        upload.json()["id"],
        name="cmp-train",
        register_as=SOURCE,
        model={
            "layers": [
                {"type": "Dense", "units": 256, "activation": "relu"},
                {"type": "Dense", "units": CLASSES, "activation": "softmax"},
            ]
        },
        fit={"epochs": 5, "batch_size": 32, "test_split": 0.2, "seed": 1},
    )
    response = httpx.post(f"{server.url}/v1/jobs", json=request, timeout=60)
    assert response.status_code == 202, response.text
    job = finished(server, response.json()["id"])
    assert job["status"] == "succeeded", job
    return {"version": job["model"]["version"], "dataset_id": upload.json()["id"], "request": request}


@pytest.fixture(scope="module")
def compressed(server: Server, source: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One job per method, queued together, then a training job that will register the next
    version: while it waits behind them, that version is 'still being registered'."""
    v = source["version"]
    jobs = {
        "int8": compress(server, v, method="int8"),
        "float16": compress(server, v, method="float16", register_as="cmp-half"),
        "prune": compress(server, v, method="prune", sparsity=0.5, fine_tune_epochs=2),
    }
    for response in jobs.values():
        assert response.status_code == 202, response.text
        assert response.json()["kind"] == "compress" and response.json()["status"] == "queued"
    pending = httpx.post(f"{server.url}/v1/jobs", json=source["request"], timeout=60)
    assert pending.status_code == 202
    not_yet = compress(server, v + 1, method="int8")
    assert not_yet.status_code == 409, not_yet.text
    assert not_yet.json()["error"].startswith("version:") and "not registered yet" in not_yet.json()["error"]
    cancelled = httpx.post(f"{server.url}/v1/jobs/{pending.json()['id']}/cancel", timeout=30)
    assert cancelled.json()["status"] == "cancelled"  # it only had to be pending
    return {method: finished(server, r.json()["id"]) for method, r in jobs.items()}


def version_of(server: Server, job: dict[str, Any]) -> dict[str, Any]:
    assert job["status"] == "succeeded", job
    name, version = job["model"]["name"], job["model"]["version"]
    body = httpx.get(f"{server.url}/v1/models/{name}/versions/{version}", timeout=60).json()
    return dict(body["model_version_status"][0], name=name)


def predict_both_ways(server: Server, name: str, version: str) -> np.ndarray:
    rows = np.random.default_rng(0).normal(size=(3, FEATURES)).astype(np.float32)
    tf = httpx.post(
        f"{server.url}/v1/models/{name}/versions/{version}:predict", json={"instances": rows.tolist()}, timeout=60
    )
    assert tf.status_code == 200, tf.text
    meta = httpx.get(f"{server.url}/v2/models/{name}/versions/{version}", timeout=30).json()
    infer = httpx.post(
        f"{server.url}/v2/models/{name}/versions/{version}/infer",
        json={
            "inputs": [
                {
                    "name": meta["inputs"][0]["name"],
                    "shape": [3, FEATURES],
                    "datatype": "FP32",
                    "data": rows.ravel().tolist(),
                }
            ]
        },
        timeout=60,
    )
    assert infer.status_code == 200, infer.text
    v1 = np.asarray(tf.json()["predictions"], dtype=np.float32)
    v2 = np.asarray(infer.json()["outputs"][0]["data"], dtype=np.float32).reshape(v1.shape)
    np.testing.assert_allclose(v1, v2, atol=1e-5)
    assert v1.shape == (3, CLASSES)
    return v1


@pytest.mark.parametrize("method", ["int8", "float16", "prune"])
def test_each_method_registers_a_servable_version_with_lineage_and_bill(
    server: Server, source: dict[str, Any], compressed: dict[str, dict[str, Any]], method: str
) -> None:
    got = version_of(server, compressed[method])
    assert got["name"] == ("cmp-half" if method == "float16" else SOURCE)
    lineage, bill = got["lineage"], got["bill"]
    assert lineage["kind"] == "compressed" and lineage["source"] == {"model": SOURCE, "version": source["version"]}
    assert lineage["settings"]["method"] == method
    assert bill["split"] == "test" and abs(bill["rows"] - 100) <= CLASSES and bill["runtime"] == "onnx"
    assert bill["latency_ms"]["rows_1"] > 0 and bill["latency_ms"]["rows_64"] > 0
    source_bill = version_of(server, {"status": "succeeded", "model": {"name": SOURCE, "version": source["version"]}})[
        "bill"
    ]
    source_version = version_of(
        server, {"status": "succeeded", "model": {"name": SOURCE, "version": source["version"]}}
    )
    assert source_bill is not None and source_bill["metrics"]["accuracy"] > 0.7
    # The very rows the source's training held out: its own test accuracy, recomputed.
    assert source_bill["metrics"]["accuracy"] == pytest.approx(source_version["metrics"]["test_accuracy"], abs=1e-6)
    assert bill["metrics"]["accuracy"] >= source_bill["metrics"]["accuracy"] - 0.05
    if method == "int8":
        assert bill["artifact_bytes"] < 0.45 * source_bill["artifact_bytes"]
    if method == "float16":
        assert bill["artifact_bytes"] < 0.65 * source_bill["artifact_bytes"]
    if method == "prune":
        assert lineage["settings"]["sparsity"] == 0.5 and lineage["settings"]["kernel_sparsity"] >= 0.5
        check = httpx.get(f"{server.url}/v1/models/{SOURCE}/versions/{got['version']}/metadata").json()
        assert check["metadata"]["serving"]["check"]["onnx_kernel_sparsity"] >= 0.5
        assert compressed[method]["progress"] == {"epoch": 2, "epochs": 2}
    predict_both_ways(server, got["name"], got["version"])


def test_compare_puts_both_bills_side_by_side(
    server: Server, source: dict[str, Any], compressed: dict[str, dict[str, Any]]
) -> None:
    a, b = source["version"], compressed["int8"]["model"]["version"]
    response = httpx.get(f"{server.url}/v1/models/{SOURCE}/compare", params={"a": a, "b": b}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["a"]["version"] == a and body["a"]["lineage"] is None and body["a"]["bill"]["params"] > 0
    assert body["b"]["lineage"]["settings"]["method"] == "int8"
    assert body["ratios"]["artifact_bytes"] < 0.45
    assert set(body["deltas"]) == {"accuracy"}
    missing = httpx.get(f"{server.url}/v1/models/{SOURCE}/compare", params={"a": a, "b": 999}, timeout=30)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "version", "status", "field"),
    [
        ({"method": "prune", "sparsity": 1.5}, None, 422, "sparsity"),
        ({"method": "int4"}, None, 422, "method"),
        ({"method": "int8", "sparsity": 0.5}, None, 422, "sparsity"),
        ({"method": "int8", "register_as": "no spaces allowed"}, None, 422, "register_as"),
        ({"method": "int8"}, 999, 404, "version 999"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(
    server: Server, source: dict[str, Any], body: dict[str, Any], version: int | None, status: int, field: str
) -> None:
    response = compress(server, version or source["version"], **body)
    assert response.status_code == status, response.text
    assert field in response.text
    assert "error" in response.json()
