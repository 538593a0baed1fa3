"""With auth off (a server on loopback), web pages cannot drive it: Host, Origin and body-type
checks on both the FastAPI routes and the predict fast path; CORS only when configured."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.main import auth_required, create_app
from tests.factories import csv_bytes, job_request, register_version, seed_mlp

PREDICT = "/v1/models/tiny:predict"
BODY = b'{"instances": [[0, 0, 0, 0]]}'


def local_app(settings: Settings, **overrides: object) -> TestClient:
    settings = settings.model_copy(update=overrides)
    upgrade_to_head(settings)
    register_version(settings, "tiny", seed_mlp(features=4, classes=3, hidden=8), onnx=False)
    return TestClient(create_app(settings), base_url="http://localhost:8000")


@pytest.fixture
def local(settings: Settings) -> Iterator[TestClient]:
    with local_app(settings) as client:
        yield client


@pytest.mark.parametrize(
    ("listen", "mode", "required"),
    [
        (["127.0.0.1"], "auto", False),
        (["localhost", "::1", "127.0.0.2"], "auto", False),
        (["0.0.0.0"], "auto", True),
        (["::"], "auto", True),
        (["127.0.0.1", "10.0.0.5"], "auto", True),
        (["127.0.0.1"], "on", True),
        (["0.0.0.0"], "off", False),
    ],
)
def test_auto_requires_keys_unless_every_listening_address_is_loopback(
    listen: list[str], mode: str, required: bool
) -> None:
    assert auth_required(Settings(auth=mode), listen) is required  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "192.168.1.5:8000", "localhost.evil.example"])
def test_a_rebound_host_name_is_refused_everywhere_but_the_health_probes(local: TestClient, host: str) -> None:
    headers = {"Host": host}

    for response in (
        local.get("/v1/datasets", headers=headers),
        local.post(PREDICT, content=BODY, headers=headers),  # the fast path
        local.post("/v2/models/tiny/infer", content=b"{}", headers=headers),
    ):
        assert response.status_code == 403 and "loopback" in response.json()["error"]
    assert local.get("/healthz", headers=headers).status_code == 200
    assert local.get("/v2/health/live", headers=headers).status_code == 200


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "[::1]:8000", "app.localhost"])
def test_loopback_host_names_are_served(local: TestClient, host: str) -> None:
    assert local.post(PREDICT, content=BODY, headers={"Host": host}).status_code == 200


def test_a_cross_site_origin_is_refused_and_the_servers_own_is_not(local: TestClient) -> None:
    evil = {"Origin": "https://evil.example"}

    assert local.post(PREDICT, content=BODY, headers=evil).status_code == 403
    assert local.post("/v1/jobs", json=job_request("0" * 32), headers=evil).status_code == 403
    assert local.get("/v1/jobs", headers={"Origin": "null"}).status_code == 403
    assert local.post(PREDICT, content=BODY, headers={"Origin": "http://localhost:8000"}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_bodies_a_page_may_send_cross_site_are_refused_on_json_routes(local: TestClient, content_type: str) -> None:
    headers = {"Content-Type": f"{content_type}; charset=utf-8"}

    predict = local.post(PREDICT, content=BODY, headers=headers)
    submit = local.post("/v1/jobs", content=b"{}", headers=headers)

    assert predict.status_code == 415 and submit.status_code == 415
    assert "application/json" in predict.json()["error"]


def test_json_and_untyped_bodies_and_the_multipart_upload_are_served(local: TestClient) -> None:
    assert local.post(PREDICT, content=BODY).status_code == 200
    assert local.post(PREDICT, content=BODY, headers={"Content-Type": "application/json"}).status_code == 200
    upload = local.post("/v1/datasets", files={"file": ("d.csv", csv_bytes())})
    assert upload.status_code == 201


def test_no_cors_headers_unless_origins_are_configured(local: TestClient, settings: Settings) -> None:
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in local.options(PREDICT, headers=preflight).headers

    with local_app(settings, cors_origins=["https://ui.example"]) as configured:
        allowed = configured.options(PREDICT, headers=preflight)
        predicted = configured.post(PREDICT, content=BODY, headers={"Origin": "https://ui.example"})
        other = configured.post(PREDICT, content=BODY, headers={"Origin": "https://evil.example"})

    assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
    assert predicted.status_code == 200
    assert predicted.headers["access-control-allow-origin"] == "https://ui.example"
    assert other.status_code == 403
