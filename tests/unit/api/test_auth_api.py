"""API keys over HTTP with auth on: shown once and stored hashed, revocation, last use, the key
cache, per-key rates and per-project quotas; `trainyard keys` against the database."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from app.auth import service as keys
from app.auth.principal import Scope
from app.cli import cli
from app.config import Settings
from app.db.base import utcnow
from app.db.migrate import upgrade_to_head
from app.db.session import session_scope
from app.main import create_app
from app.models import ApiKey
from tests.factories import csv_bytes, job_request, register_version, seed_mlp

LOCAL = "http://127.0.0.1"


def secured(settings: Settings, **overrides: object) -> TestClient:
    settings = settings.model_copy(update={"auth": "on", **overrides})
    upgrade_to_head(settings)
    return TestClient(create_app(settings), base_url=LOCAL)


def make_key(settings: Settings, project: str, *scopes: Scope) -> dict[str, str]:
    with session_scope(settings.sqlalchemy_url) as session:
        _, key = keys.create_key(session, project, scopes)
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with secured(settings) as client:
        yield client


def test_a_created_key_is_shown_once_and_only_its_hash_is_stored(api: TestClient, settings: Settings) -> None:
    admin = make_key(settings, "ops", Scope.ADMIN)

    created = api.post("/v1/keys", json={"project": "alpha", "scopes": ["read", "train"], "name": "ci"}, headers=admin)

    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith("ty_") and len(key) > 40 and body["prefix"] == key[:10]
    assert body["limits"] == {
        "submit_per_s": settings.submit_rate_per_key,
        "predict_per_s": settings.predict_rate_per_key,
        "max_active_jobs_per_project": settings.max_active_jobs_per_project,
        "max_dataset_bytes_per_project": settings.max_dataset_bytes_per_project,
    }
    listed = api.get("/v1/keys", params={"project": "alpha"}, headers=admin).json()["items"]
    assert [k["id"] for k in listed] == [body["id"]] and "key" not in listed[0]
    with session_scope(settings.sqlalchemy_url) as session:
        row = session.scalars(select(ApiKey).where(ApiKey.id == body["id"])).one()
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key not in (row.name, row.prefix, row.project, row.key_hash)
    assert api.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_a_bad_key_request_names_the_field(api: TestClient, settings: Settings) -> None:
    admin = make_key(settings, "ops", Scope.ADMIN)

    response = api.post("/v1/keys", json={"project": "Alpha!", "scopes": ["root"]}, headers=admin)

    assert response.status_code == 422
    assert {d["path"] for d in response.json()["detail"]} == {"project", "scopes[0]"}


def test_a_key_revoked_over_http_stops_working_at_once(api: TestClient, settings: Settings) -> None:
    admin = make_key(settings, "ops", Scope.ADMIN)
    created = api.post("/v1/keys", json={"scopes": ["read"]}, headers=admin).json()
    reader = {"Authorization": f"Bearer {created['key']}"}
    assert api.get("/v1/jobs", headers=reader).status_code == 200  # now in this process's cache

    assert api.delete(f"/v1/keys/{created['id']}", headers=admin).status_code == 204

    refused = api.get("/v1/jobs", headers=reader)
    assert refused.status_code == 401 and refused.json()["error"] == "the API key was revoked"
    assert api.get("/v1/keys", headers=admin).json()["items"][-1]["revoked_at"] is not None


def test_the_key_cache_trusts_a_row_for_its_period_then_reads_it_again(settings: Settings) -> None:
    with secured(settings, key_cache_s=3600.0) as cached, secured(settings, key_cache_s=0.0) as uncached:
        reader = make_key(settings, "alpha", Scope.READ)
        assert cached.get("/v1/jobs", headers=reader).status_code == 200
        with session_scope(settings.sqlalchemy_url) as session:  # revoked by another process
            session.execute(update(ApiKey).values(revoked_at=utcnow()))

        assert cached.get("/v1/jobs", headers=reader).status_code == 200  # within its period
        assert uncached.get("/v1/jobs", headers=reader).status_code == 401


def test_last_used_is_recorded_when_the_row_is_read(api: TestClient, settings: Settings) -> None:
    reader = make_key(settings, "alpha", Scope.READ)
    before = utcnow()

    api.get("/v1/jobs", headers=reader)

    with session_scope(settings.sqlalchemy_url) as session:
        last_used = session.scalars(select(ApiKey.last_used_at)).one()
    assert last_used is not None and last_used >= before


def test_predict_over_the_keys_rate_is_a_429_with_retry_after(settings: Settings) -> None:
    upgrade_to_head(settings)
    register_version(settings, "tiny", seed_mlp(features=4, classes=3, hidden=8), onnx=False, project="alpha")
    with secured(settings, predict_rate_per_key=0.01) as api:  # one request, then one per 100 s
        first, other = make_key(settings, "alpha", Scope.PREDICT), make_key(settings, "alpha", Scope.PREDICT)
        body = {"instances": [[0.0, 0.0, 0.0, 0.0]]}

        assert api.post("/v1/models/tiny:predict", json=body, headers=first).status_code == 200
        limited = api.post("/v1/models/tiny:predict", json=body, headers=first)

        assert limited.status_code == 429 and limited.headers["retry-after"] == "100"
        assert "PREDICT_RATE_PER_KEY" in limited.json()["error"]
        assert api.post("/v1/models/tiny:predict", json=body, headers=other).status_code == 200  # per key


def test_submits_over_the_rate_and_jobs_over_the_project_quota_are_429s(settings: Settings) -> None:
    with secured(settings, submit_rate_per_key=0.01, max_active_jobs_per_project=1) as api:
        alpha, again, beta = (make_key(settings, p, Scope.TRAIN) for p in ("alpha", "alpha", "beta"))
        alpha_data = api.post("/v1/datasets", files={"file": ("a.csv", csv_bytes())}, headers=alpha).json()["id"]
        beta_data = api.post("/v1/datasets", files={"file": ("b.csv", csv_bytes())}, headers=beta).json()["id"]

        assert api.post("/v1/jobs", json=job_request(alpha_data), headers=alpha).status_code == 202
        rate = api.post("/v1/jobs", json=job_request(alpha_data), headers=alpha)
        quota = api.post("/v1/jobs", json=job_request(alpha_data), headers=again)

        assert rate.status_code == 429 and "SUBMIT_RATE_PER_KEY" in rate.json()["error"]
        assert quota.status_code == 429 and quota.headers["retry-after"] == "30"
        assert "MAX_ACTIVE_JOBS_PER_PROJECT" in quota.json()["error"]
        assert api.post("/v1/jobs", json=job_request(beta_data), headers=beta).status_code == 202


def test_uploads_past_the_projects_dataset_bytes_are_a_413(settings: Settings) -> None:
    data = csv_bytes()
    with secured(settings, max_dataset_bytes_per_project=len(data) * 3 // 2) as api:
        alpha, beta = make_key(settings, "alpha", Scope.TRAIN), make_key(settings, "beta", Scope.TRAIN)

        assert api.post("/v1/datasets", files={"file": ("a.csv", data)}, headers=alpha).status_code == 201
        refused = api.post("/v1/datasets", files={"file": ("b.csv", csv_bytes(seed=1))}, headers=alpha)

        assert refused.status_code == 413 and "MAX_DATASET_BYTES_PER_PROJECT" in refused.json()["error"]
        assert api.post("/v1/datasets", files={"file": ("b.csv", csv_bytes(seed=1))}, headers=beta).status_code == 201
        assert list((settings.datasets_dir / ".incoming").glob("*.part")) == []  # the refused upload is gone


def test_the_same_bytes_uploaded_by_two_projects_are_two_datasets(api: TestClient, settings: Settings) -> None:
    alpha, beta = make_key(settings, "alpha", Scope.TRAIN), make_key(settings, "beta", Scope.TRAIN)

    first = api.post("/v1/datasets", files={"file": ("d.csv", csv_bytes())}, headers=alpha)
    second = api.post("/v1/datasets", files={"file": ("d.csv", csv_bytes())}, headers=beta)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]


def test_a_model_name_of_another_project_cannot_be_registered(api: TestClient, settings: Settings) -> None:
    register_version(settings, "taken", seed_mlp(features=4, classes=3, hidden=8), onnx=False, project="alpha")
    beta = make_key(settings, "beta", Scope.TRAIN)
    dataset_id = api.post("/v1/datasets", files={"file": ("d.csv", csv_bytes())}, headers=beta).json()["id"]

    response = api.post("/v1/jobs", json=job_request(dataset_id, register_as="taken"), headers=beta)

    assert response.status_code == 409 and response.json()["error"].startswith("register_as:")


def test_the_keys_command_makes_the_first_admin_key(settings: Settings, tmp_path: Path) -> None:
    env = {"TRAINYARD_HOME": str(settings.home)}
    from app.config import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        created = runner.invoke(cli, ["keys", "create", "--scope", "admin", "--name", "first"], env=env)
        assert created.exit_code == 0, created.output
        key = created.stdout.strip().splitlines()[-1]
        listed = runner.invoke(cli, ["keys", "list"], env=env)
        key_id = listed.stdout.split()[0]
        with secured(settings) as api:
            assert api.get("/v1/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        revoked = runner.invoke(cli, ["keys", "revoke", key_id], env=env)
        bad = runner.invoke(cli, ["keys", "create", "--scope", "root"], env=env)
    finally:
        get_settings.cache_clear()

    assert key.startswith("ty_") and key not in listed.stdout and "first" in listed.stdout
    assert revoked.exit_code == 0
    assert bad.exit_code != 0 and "scopes" in bad.output
