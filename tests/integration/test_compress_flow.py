"""A compression job on PostgreSQL + Redis with a real `trainyard worker` subprocess: prune a
trained version (fine-tune on its dataset), then quantize the pruned one to int8 (a compressed
source: its lineage chains), each served by :predict with its bill in the registry."""

import pytest
from fastapi.testclient import TestClient

from tests.factories import csv_bytes, job_request
from tests.integration.test_training_flow import wait_final
from tests.services import TrainyardProcess

pytestmark = pytest.mark.integration


def test_prune_then_int8_on_postgres_with_a_real_worker(api: TestClient, worker: TrainyardProcess) -> None:
    data = csv_bytes(rows=200, features=8, classes=3, seed=7701)  # rows no other module uploads
    dataset = api.post("/v1/datasets", files={"file": ("c.csv", data)})
    assert dataset.status_code == 201, dataset.text
    request = job_request(
        dataset.json()["id"],
        register_as="pg-compress",
        model={"layers": [{"type": "Dense", "units": 32, "activation": "relu"}, {"type": "Dense", "units": 3}]},
        fit={"epochs": 4, "batch_size": 16, "test_split": 0.2, "seed": 3},
    )
    trained = wait_final(api, api.post("/v1/jobs", json=request).json()["id"])
    assert trained["status"] == "succeeded", trained["error"]

    pruned_job = api.post(
        "/v1/models/pg-compress/versions/1/compress", json={"method": "prune", "sparsity": 0.6, "fine_tune_epochs": 1}
    )
    assert pruned_job.status_code == 202, pruned_job.text
    pruned = wait_final(api, pruned_job.json()["id"], timeout=180)
    assert pruned["status"] == "succeeded", pruned["error"]
    assert pruned["kind"] == "compress" and pruned["model"] == {"name": "pg-compress", "version": 2}
    assert f"job={pruned['id']}" in worker.log()

    int8_job = api.post("/v1/models/pg-compress/versions/2/compress", json={"method": "int8"})
    assert int8_job.status_code == 202, int8_job.text
    assert wait_final(api, int8_job.json()["id"], timeout=180)["status"] == "succeeded"

    versions = {int(v["version"]): v for v in api.get("/v1/models/pg-compress").json()["model_version_status"]}
    assert versions[1]["lineage"] is None and versions[1]["bill"]["split"] == "test"
    assert versions[2]["lineage"]["settings"]["kernel_sparsity"] >= 0.6
    # A compressed source: measured on the held-out rows of its trained ancestor, version 1.
    assert versions[3]["lineage"]["source"] == {"model": "pg-compress", "version": 2}
    assert versions[3]["bill"]["split"] == "test" and versions[3]["bill"]["rows"] == versions[1]["bill"]["rows"]
    assert versions[3]["bill"]["params"] > 0 and versions[3]["bill"]["latency_ms"]["rows_64"] > 0
    compare = api.get("/v1/models/pg-compress/compare", params={"a": 1, "b": 2}).json()
    assert compare["b"]["lineage"]["settings"]["method"] == "prune" and "accuracy" in compare["deltas"]
    for version in (2, 3):
        predicted = api.post(f"/v1/models/pg-compress/versions/{version}:predict", json={"instances": [[0.1] * 8]})
        assert predicted.status_code == 200 and len(predicted.json()["predictions"][0]) == 3
