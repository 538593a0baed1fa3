"""/v1/studies in-process (embedded settings, no worker): the door's checks, the trials the
driver starts as queued jobs, cancel, and the picture."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import wait_for
from tests.studies import base_request, study_request


def create(client: TestClient, dataset_id: str, **overrides: Any) -> Any:
    return client.post("/v1/studies", json=study_request(dataset_id, **overrides))


def test_a_study_starts_parallelism_trials_as_jobs_and_a_cancel_ends_them(client: TestClient, dataset_id: str) -> None:
    created = create(client, dataset_id, parallelism=2, max_trials=5)
    assert created.status_code == 202, created.text
    study_id = created.json()["id"]

    def two_trials() -> list[dict[str, Any]] | None:
        trials = client.get(f"/v1/studies/{study_id}").json()["trials"]
        return trials if len(trials) == 2 and all(t["job_id"] for t in trials) else None

    trials = wait_for(two_trials, timeout=30, interval=0.1, what="the driver to start two trials")
    assert all(t["status"] == "queued" for t in trials)  # no worker here: parallelism holds at 2
    for trial in trials:
        params = trial["params"]
        assert 4 <= params["/model/layers/0/units"] <= 32
        job = client.get(f"/v1/jobs/{trial['job_id']}", params={"view": "full"}).json()
        assert job["spec"]["model"]["layers"][0]["units"] == params["/model/layers/0/units"]
        assert job["spec"]["compile"]["optimizer"]["type"] == params["/compile/optimizer/type"]
    listed = client.get("/v1/jobs", params={"study_id": study_id}).json()["items"]
    assert sorted(j["id"] for j in listed) == sorted(t["job_id"] for t in trials)
    assert client.get("/v1/studies").json()["items"][0]["id"] == study_id
    plot = client.get(f"/v1/studies/{study_id}/plot.svg")
    assert plot.status_code == 200 and plot.content.startswith(b"<?xml")

    assert client.post(f"/v1/studies/{study_id}/cancel").status_code == 202

    def cancelled() -> dict[str, Any] | None:
        study = client.get(f"/v1/studies/{study_id}").json()
        return study if study["status"] == "cancelled" else None

    study = wait_for(cancelled, timeout=30, interval=0.1, what="the study to end cancelled")
    assert len(study["trials"]) == 2  # no trial ended on its own, so no third one was asked
    assert all(t["status"] == "cancelled" for t in study["trials"])
    assert all(client.get(f"/v1/jobs/{t['job_id']}").json()["status"] == "cancelled" for t in study["trials"])
    assert client.post(f"/v1/studies/{study_id}/cancel").status_code == 200


@pytest.mark.parametrize(
    ("overrides", "loc", "words"),
    [
        (
            {"search_space": {"/model/layers/5/units": {"type": "int", "low": 4, "high": 8}}},
            ["search_space", "/model/layers/5/units"],
            "nothing at /model/layers/5",
        ),
        (
            {"search_space": {"model/layers/0/units": {"type": "int", "low": 4, "high": 8}}},
            ["search_space", "model/layers/0/units"],
            "JSON Pointer",
        ),
        (
            # the corner units=0 is no valid layer: named with the pointer and the point
            {"search_space": {"/model/layers/0/units": {"type": "int", "low": 0, "high": 8}}},
            ["search_space", "/model/layers/0/units"],
            "/model/layers/0/units=0",
        ),
        (
            # an activation Keras does not have, at one of the choices
            {"search_space": {"/model/layers/0/activation": {"type": "categorical", "choices": ["relu", "nope"]}}},
            ["search_space", "/model/layers/0/activation"],
            "'nope'",
        ),
        (
            {"search_space": {"/fit/validation_split": {"type": "float", "low": 0.1, "high": 0.5}}, "sampler": "grid"},
            ["search_space", "/fit/validation_split"],
            "step",
        ),
        ({"objective": {"metric": "val_precision"}}, ["objective", "metric"], "do not log 'val_precision'"),
    ],
)
def test_a_space_with_a_bad_point_is_refused_naming_the_pointer(
    client: TestClient, dataset_id: str, overrides: dict[str, Any], loc: list[str], words: str
) -> None:
    response = create(client, dataset_id, **overrides)
    assert response.status_code == 422, response.text
    body = response.json()
    assert words in body["error"], body
    assert body["detail"][0]["loc"] == loc, body
    assert client.get("/v1/studies").json()["items"] == []


def test_an_optimizer_given_as_a_name_has_no_fields_to_search(client: TestClient, dataset_id: str) -> None:
    base = base_request()
    base["compile"]["optimizer"] = "adam"
    response = create(client, dataset_id, base=base)
    assert response.status_code == 422
    assert "not an object" in response.json()["error"]


def test_a_validation_metric_needs_a_validation_split(client: TestClient, dataset_id: str) -> None:
    response = create(client, dataset_id, base=base_request(validation_split=0.0))
    assert response.status_code == 422
    assert "validation_split" in response.json()["error"]


def test_malformed_studies_are_422_and_unknown_ones_404(client: TestClient, dataset_id: str) -> None:
    categorical = {"/fit/epochs": {"type": "categorical"}}
    assert create(client, dataset_id, search_space=categorical).status_code == 422
    assert create(client, dataset_id, search_space={}).status_code == 422
    assert create(client, dataset_id, parallelism=0).status_code == 422
    assert create(client, "nope").status_code == 404
    assert client.get("/v1/studies/nope").status_code == 404
    assert client.post("/v1/studies/nope/cancel").status_code == 404
    assert client.get("/v1/studies/nope/plot.svg").status_code == 404


def test_a_study_past_its_max_runtime_stops_its_trials_and_ends(client: TestClient, dataset_id: str) -> None:
    created = create(client, dataset_id, max_runtime_s=1, parallelism=1)
    assert created.status_code == 202, created.text

    def ended() -> dict[str, Any] | None:
        study = client.get(f"/v1/studies/{created.json()['id']}").json()
        return study if study["status"] != "running" else None

    study = wait_for(ended, timeout=30, interval=0.1, what="the study to run out of time")
    assert study["status"] == "failed" and "max_runtime_s" in study["error"]  # no trial gave a value
    assert all(t["status"] == "cancelled" for t in study["trials"])
