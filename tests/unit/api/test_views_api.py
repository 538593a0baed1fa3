"""`?view=summary|full` over HTTP: datasets and jobs answer a summary by default, the whole
object (as it was before views existed) when asked, and a 422 for any other view."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.session import session_scope
from app.models import Dataset, Job
from tests.factories import csv_bytes, job_request

FULL = {"view": "full"}
# Every key the dataset and job objects had before views: the full view keeps all of them.
DATASET_KEYS = {
    "id", "name", "project", "format", "sha256", "size_bytes", "n_rows", "features", "target", "warnings", "created_at",
}  # fmt: skip
JOB_KEYS = {
    "id", "kind", "name", "project", "status", "dataset_id", "spec", "register_as", "queue", "progress", "metrics",
    "error", "model", "attempt", "handbacks", "resumed_from_epoch", "checkpoint", "gpus", "resources", "waiting_for",
    "max_runtime_s", "runtime_s", "last_exit", "performance", "worker", "cancel_requested", "created_at",
    "started_at", "finished_at",
}  # fmt: skip
# A text column, an empty numeric cell and text labels: every part of the schema a summary counts.
PETS = b"size,colour,weight,label\n1.5,red,3,cat\n2.5,blue,,dog\n3.5,red,5,cat\n4.5,green,6,dog\n"


def upload_pets(client: TestClient, **params: str) -> Any:
    return client.post("/v1/datasets", params=params, files={"file": ("pets.csv", PETS)}, data={"name": "pets"})


def stored_dataset(settings: Settings, dataset_id: str) -> dict[str, Any]:
    with session_scope(settings.sqlalchemy_url) as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        return {"features": dataset.features, "target": dataset.target}


def stored_spec(settings: Settings, job_id: str) -> dict[str, Any]:
    with session_scope(settings.sqlalchemy_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return dict(job.spec)


# --- datasets ------------------------------------------------------------------------------------


def test_an_upload_answers_a_summary_that_counts_the_schema_and_links_to_it(client: TestClient) -> None:
    response = upload_pets(client)
    assert response.status_code == 201, response.text
    summary = response.json()
    assert summary["view"] == "summary" and summary["name"] == "pets" and summary["n_rows"] == 4
    assert summary["features"] == {
        "shape": [3],
        "dtype": "float32",
        "n_columns": 3,
        "n_categorical": 1,
        "n_missing": 1,
        "color_mode": None,
    }
    assert summary["target"] == {"shape": [], "dtype": "int64", "columns": ["label"], "n_classes": 2}
    assert summary["schema_url"] == f"/v1/datasets/{summary['id']}?view=full"
    full = client.get(summary["schema_url"]).json()
    assert full["features"]["columns"] == ["size", "colour", "weight"] and full["target"]["classes"] == ["cat", "dog"]


def test_the_full_view_of_a_dataset_is_the_whole_object_as_stored(client: TestClient, settings: Settings) -> None:
    full = upload_pets(client, view="full").json()
    assert set(full) == DATASET_KEYS | {"view"} and full["view"] == "full"
    assert {"features": full["features"], "target": full["target"]} == stored_dataset(settings, full["id"])
    assert full["features"]["missing"]["weight"]["count"] == 1
    assert client.get(f"/v1/datasets/{full['id']}", params=FULL).json() == full


def test_a_dataset_summary_keeps_every_scalar_field_of_the_full_object(client: TestClient) -> None:
    full = upload_pets(client, view="full").json()
    summary = client.get(f"/v1/datasets/{full['id']}").json()
    assert summary == client.get(f"/v1/datasets/{full['id']}", params={"view": "summary"}).json()
    kept = DATASET_KEYS - {"features", "target"}
    assert {k: summary[k] for k in kept} == {k: full[k] for k in kept}


def test_a_deduplicated_upload_answers_the_view_asked_for(client: TestClient) -> None:
    first = upload_pets(client)
    again = upload_pets(client, view="full")
    assert (first.status_code, again.status_code) == (201, 200)
    assert (first.json()["view"], again.json()["view"]) == ("summary", "full")


def test_dataset_lists_hold_summaries_unless_the_full_view_is_asked(client: TestClient) -> None:
    upload_pets(client)
    client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes())})
    listed = client.get("/v1/datasets").json()["items"]
    assert [d["view"] for d in listed] == ["summary", "summary"]
    assert all("column_types" not in d["features"] for d in listed)
    full = client.get("/v1/datasets", params=FULL).json()["items"]
    assert [set(d) for d in full] == [DATASET_KEYS | {"view"}] * 2
    assert [d["id"] for d in full] == [d["id"] for d in listed]


# --- jobs ----------------------------------------------------------------------------------------


def test_a_submit_answers_a_summary_of_the_spec_with_a_link_to_it(client: TestClient, dataset_id: str) -> None:
    response = client.post("/v1/jobs", json=job_request(dataset_id))
    assert response.status_code == 202, response.text
    summary = response.json()
    assert summary["view"] == "summary" and "spec" not in summary
    assert summary["spec_summary"] == {
        "layers": 2,
        "optimizer": "adam",
        "loss": "sparse_categorical_crossentropy",
        "batch_size": 16,
        "method": None,
    }
    assert summary["spec_url"] == f"/v1/jobs/{summary['id']}?view=full"
    assert client.get(summary["spec_url"]).json()["spec"]["fit"]["epochs"] == 3


def test_an_object_optimizer_is_summarised_by_its_type(client: TestClient, dataset_id: str) -> None:
    compile_ = {"optimizer": {"type": "SGD", "learning_rate": 0.01}, "loss": "sparse_categorical_crossentropy"}
    summary = client.post("/v1/jobs", json=job_request(dataset_id, compile=compile_)).json()
    assert summary["spec_summary"]["optimizer"] == "SGD"


def test_the_full_view_of_a_job_is_the_whole_object_with_its_stored_spec(
    client: TestClient, settings: Settings, dataset_id: str
) -> None:
    full = client.post("/v1/jobs", params=FULL, json=job_request(dataset_id)).json()
    assert set(full) == JOB_KEYS | {"view"} and full["view"] == "full"
    assert full["spec"] == stored_spec(settings, full["id"])
    assert client.get(f"/v1/jobs/{full['id']}", params=FULL).json() == full


def test_a_job_summary_is_the_full_object_without_its_spec(client: TestClient, dataset_id: str) -> None:
    job_id = client.post("/v1/jobs", json=job_request(dataset_id)).json()["id"]
    summary = client.get(f"/v1/jobs/{job_id}").json()
    full = client.get(f"/v1/jobs/{job_id}", params=FULL).json()
    assert {k: summary[k] for k in JOB_KEYS - {"spec"}} == {k: full[k] for k in JOB_KEYS - {"spec"}}
    assert set(summary) == JOB_KEYS - {"spec"} | {"view", "spec_summary", "spec_url"}


def test_a_replayed_submit_answers_the_view_asked_for(client: TestClient, dataset_id: str) -> None:
    headers = {"Idempotency-Key": "views-1"}
    first = client.post("/v1/jobs", json=job_request(dataset_id), headers=headers).json()
    again = client.post("/v1/jobs", params=FULL, json=job_request(dataset_id), headers=headers).json()
    assert first["id"] == again["id"] and (first["view"], again["view"]) == ("summary", "full")


def test_job_lists_and_cancels_answer_summaries_unless_full_is_asked(client: TestClient, dataset_id: str) -> None:
    ids = [client.post("/v1/jobs", json=job_request(dataset_id, name=f"j{i}")).json()["id"] for i in range(2)]
    listed = client.get("/v1/jobs").json()["items"]
    assert [j["view"] for j in listed] == ["summary", "summary"] and all("spec" not in j for j in listed)
    full = client.get("/v1/jobs", params=FULL).json()["items"]
    assert [set(j) for j in full] == [JOB_KEYS | {"view"}] * 2
    cancelled = client.post(f"/v1/jobs/{ids[0]}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["view"] == "summary"
    again = client.post(f"/v1/jobs/{ids[0]}/cancel", params=FULL)
    assert again.status_code == 200 and again.json()["spec"]["fit"]["batch_size"] == 16


# --- a view that does not exist --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/datasets"),
        ("GET", "/v1/datasets/{dataset_id}"),
        ("POST", "/v1/datasets"),
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/{job_id}"),
        ("POST", "/v1/jobs"),
        ("POST", "/v1/jobs/{job_id}/cancel"),
    ],
)
def test_an_unknown_view_is_a_422_naming_the_parameter(
    client: TestClient, dataset_id: str, method: str, path: str
) -> None:
    job_id = client.post("/v1/jobs", json=job_request(dataset_id)).json()["id"]
    body: dict[str, Any] = {}
    if path == "/v1/jobs":
        body = {"json": job_request(dataset_id)}
    elif path == "/v1/datasets" and method == "POST":
        body = {"files": {"file": ("d.csv", csv_bytes(seed=9))}}
    url = path.format(dataset_id=dataset_id, job_id=job_id)
    response = client.request(method, url, params={"view": "compact"}, **body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "view"]
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"  # a refused cancel changed nothing


def test_the_openapi_document_declares_both_views_told_apart_by_view(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    get_job = document["paths"]["/v1/jobs/{job_id}"]["get"]
    view = next(p for p in get_job["parameters"] if p["name"] == "view")
    assert view["in"] == "query" and view["schema"]["default"] == "summary"
    answer = get_job["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["discriminator"]["propertyName"] == "view"
    assert set(answer["discriminator"]["mapping"]) == {"summary", "full"}
    upload = document["paths"]["/v1/datasets"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert set(upload["discriminator"]["mapping"]) == {"summary", "full"}
