"""/v1/jobs over HTTP without a worker: validation at the door, listing, cancel, idempotency."""

import pytest
from fastapi.testclient import TestClient

from tests.factories import job_request, mlp_layers


def test_a_valid_job_is_accepted_as_queued(client: TestClient, dataset_id: str) -> None:
    response = client.post("/v1/jobs", json=job_request(dataset_id, register_as="tiny"))
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued" and job["progress"] == {"epoch": 0, "epochs": 3}
    assert job["register_as"] == "tiny" and job["model"] is None and job["attempt"] == 0


def test_an_unknown_dataset_is_a_404(client: TestClient) -> None:
    response = client.post("/v1/jobs", json=job_request("0" * 32))
    assert response.status_code == 404
    assert "does not exist" in response.json()["error"]


def test_a_bad_field_is_a_422_with_its_path_and_nothing_is_stored(client: TestClient, dataset_id: str) -> None:
    layers = mlp_layers()
    layers[0]["units"] = -1
    response = client.post("/v1/jobs", json=job_request(dataset_id, model={"layers": layers}))
    assert response.status_code == 422
    assert response.json()["error"].startswith("model.layers[0].units:")
    assert client.get("/v1/jobs").json()["items"] == []


def test_a_spec_that_does_not_fit_the_dataset_is_a_422_before_queueing(client: TestClient, dataset_id: str) -> None:
    response = client.post("/v1/jobs", json=job_request(dataset_id, model={"layers": mlp_layers(classes=5)}))
    assert response.status_code == 422
    assert response.json()["error"].startswith("model.layers[1].units: the output layer has 5 units")
    assert client.get("/v1/jobs").json()["items"] == []


def test_cancelling_a_queued_job_ends_it_at_once(client: TestClient, dataset_id: str) -> None:
    job = client.post("/v1/jobs", json=job_request(dataset_id)).json()
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    again = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    events = client.get(f"/v1/jobs/{job['id']}/events").json()
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "queued"),
        ("queued", "cancelled"),
    ]


def test_the_same_idempotency_key_returns_the_same_job(client: TestClient, dataset_id: str) -> None:
    headers = {"Idempotency-Key": "abc-123"}
    first = client.post("/v1/jobs", json=job_request(dataset_id), headers=headers).json()
    second = client.post("/v1/jobs", json=job_request(dataset_id), headers=headers).json()
    assert first["id"] == second["id"]
    assert len(client.get("/v1/jobs").json()["items"]) == 1
    other = client.post("/v1/jobs", json=job_request(dataset_id, name="other"), headers=headers)
    assert other.status_code == 409


def test_jobs_are_filtered_by_status_and_name(client: TestClient, dataset_id: str) -> None:
    a = client.post("/v1/jobs", json=job_request(dataset_id, name="a")).json()
    client.post("/v1/jobs", json=job_request(dataset_id, name="b"))
    client.post(f"/v1/jobs/{a['id']}/cancel")
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()["items"]
    assert [j["name"] for j in cancelled] == ["a"]
    assert [j["name"] for j in client.get("/v1/jobs", params={"name": "b"}).json()["items"]] == ["b"]


def test_an_unknown_job_is_a_404_in_the_error_shape(client: TestClient) -> None:
    response = client.get("/v1/jobs/nope")
    assert response.status_code == 404
    assert set(response.json()) == {"error", "detail"}


def test_empty_cells_need_a_policy_before_a_job_is_queued(client: TestClient) -> None:
    data = b"a,b,label\n1,2,0\n3,,1\n" + b"".join(b"%d,%d,%d\n" % (i, i + 1, i % 2) for i in range(20))
    dataset = client.post("/v1/datasets", params={"view": "full"}, files={"file": ("gaps.csv", data)}).json()
    assert dataset["features"]["missing"] == {"b": {"count": 1, "first": "data row 2 (line 3)"}}
    layers = mlp_layers(classes=2)

    refused = client.post("/v1/jobs", json=job_request(dataset["id"], model={"layers": layers}))
    assert refused.status_code == 422
    assert refused.json()["error"].startswith(
        "preprocessing.missing: column 'b' has 1 empty value(s), the first at data row 2 (line 3)"
    )
    for policy in ("drop", "mean", {"constant": 0}):
        accepted = client.post(
            "/v1/jobs", json=job_request(dataset["id"], model={"layers": layers}, preprocessing={"missing": policy})
        )
        assert accepted.status_code == 202, accepted.text


def test_keras_names_are_accepted_and_stored_in_canonical_form(client: TestClient, dataset_id: str) -> None:
    compile_ = {"optimizer": "Adam", "loss": "SparseCategoricalCrossentropy", "metrics": ["acc"]}
    response = client.post("/v1/jobs", json=job_request(dataset_id, compile=compile_))
    assert response.status_code == 202, response.text
    stored = client.get(f"/v1/jobs/{response.json()['id']}", params={"view": "full"}).json()["spec"]["compile"]
    assert (stored["optimizer"], stored["loss"], stored["metrics"]) == (
        "adam",
        "sparse_categorical_crossentropy",
        ["accuracy"],
    )


@pytest.mark.parametrize(
    ("change", "path", "says"),
    [
        ({"compile": {"optimizer": "adamm", "loss": "mse"}}, "compile.optimizer", "did you mean 'adam'"),
        ({"model": {"layers": [{"type": "Dnse", "units": 3}]}}, "model.layers[0]", "did you mean 'Dense'"),
        (
            {"compile": {"optimizer": {"type": "Adam", "learning_rate": "fast"}, "loss": "mse"}},
            "compile.optimizer.learning_rate",
            "",
        ),
    ],
)
def test_spec_errors_name_the_field_and_never_pydantic_internals(
    client: TestClient, dataset_id: str, change: dict, path: str, says: str
) -> None:
    response = client.post("/v1/jobs", json=job_request(dataset_id, **change))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error.startswith(f"{path}:") and says in error
    assert "tagged-union[" not in response.text and "GlorotUniform" not in error  # no whole catalog


def test_a_monitor_the_model_does_not_log_is_a_422_with_suggestions(client: TestClient, dataset_id: str) -> None:
    fit = {"epochs": 3, "validation_split": 0.2, "early_stopping": {"monitor": "val_acc"}}
    response = client.post("/v1/jobs", json=job_request(dataset_id, fit=fit))
    assert response.status_code == 422
    assert response.json()["error"].startswith(
        "fit.early_stopping.monitor: the model does not log 'val_acc'; did you mean 'val_accuracy'"
    )


def test_devices_asked_for_route_the_job_to_the_gpu_queue(client: TestClient, dataset_id: str) -> None:
    by_flag = client.post("/v1/jobs", json=job_request(dataset_id, name="flag", gpu=True)).json()
    by_count = client.post("/v1/jobs", json=job_request(dataset_id, name="count", resources={"gpus": 2})).json()
    on_cpu = client.post("/v1/jobs", json=job_request(dataset_id, name="cpu")).json()

    assert (by_flag["queue"], by_flag["gpus"]) == ("training.gpu", 1)
    assert (by_count["queue"], by_count["gpus"]) == ("training.gpu", 2)
    assert (on_cpu["queue"], on_cpu["gpus"]) == ("training", 0)
    assert by_count["resources"] is None  # nothing trained yet


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"gpu": True, "resources": {"gpus": 0}}, "resources.gpus"),
        ({"resources": {"gpus": 4}, "fit": {"epochs": 1, "batch_size": 30}}, "fit.batch_size"),
        ({"resources": {"gpus": -1}}, "resources.gpus"),
        ({"resources": {"gpu": 1}}, "resources.gpu"),
    ],
)
def test_a_device_request_that_cannot_train_is_a_422_naming_the_field(
    client: TestClient, dataset_id: str, overrides: dict[str, object], field: str
) -> None:
    response = client.post("/v1/jobs", json=job_request(dataset_id, **overrides))

    assert response.status_code == 422, response.text
    assert f"{field}:" in response.json()["error"]
    assert client.get("/v1/jobs").json()["items"] == []
