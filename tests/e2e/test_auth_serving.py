"""A real `trainyard serve --serving-only --host 0.0.0.0` (TRAINYARD_AUTH=auto: keys required),
driven by tritonclient with the key in `headers=` and by TF Serving-format HTTP requests."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from app.auth import service as keys
from app.auth.principal import Scope
from app.config import Settings
from app.db.session import session_scope
from tests.e2e.conftest import Server, free_port, wait_until_ready
from tests.services import TrainyardProcess

pytestmark = pytest.mark.e2e

ROWS = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 0.0]], dtype=np.float32)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    from app.db.migrate import upgrade_to_head
    from tests.factories import register_version, seed_mlp

    home = Path(tmp_path_factory.mktemp("secured-home"))
    settings = Settings(home=home, access_log=False)  # auth stays "auto"
    upgrade_to_head(settings)
    register_version(settings, "tiny", seed_mlp(features=4, classes=3, hidden=8, seed=1), project="vision")
    with session_scope(settings.sqlalchemy_url) as session:
        made = {
            "predict": keys.create_key(session, "vision", [Scope.PREDICT])[1],
            "read": keys.create_key(session, "vision", [Scope.READ])[1],
            "other": keys.create_key(session, "audio", [Scope.PREDICT])[1],
        }
    port = free_port()
    args = ["serve", "--serving-only", "--host", "0.0.0.0", "--port", str(port)]
    process = TrainyardProcess(args, settings, home.parent / "secured.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/v2/health/ready")  # health probes need no key
        yield Server(url=url, settings=settings, process=process), made
    finally:
        process.stop()


def infer(server: Server, key: str | None) -> triton.InferResult:
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    features = triton.InferInput("features", list(ROWS.shape), "FP32")
    features.set_data_from_numpy(ROWS, binary_data=True)
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return client.infer("tiny", [features], headers=headers)


def test_tritonclient_infers_with_a_predict_key_in_its_headers(secured: tuple[Server, dict[str, str]]) -> None:
    server, made = secured
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))

    result = infer(server, made["predict"])

    assert result.as_numpy("probabilities").shape == (2, 3)
    assert client.is_server_live() and client.is_model_ready("tiny", headers=bearer(made["predict"]))
    with pytest.raises(InferenceServerException, match="API key"):
        infer(server, None)
    with pytest.raises(InferenceServerException, match="does not exist"):
        infer(server, made["other"])  # another project's model: as if there were none


def test_tf_serving_predict_needs_a_predict_key_of_the_models_project(secured: tuple[Server, dict[str, str]]) -> None:
    server, made = secured
    url = f"{server.url}/v1/models/tiny:predict"
    body = {"instances": ROWS.tolist()}

    ok = httpx.post(url, json=body, headers=bearer(made["predict"]))
    anonymous = httpx.post(url, json=body)
    read_only = httpx.post(url, json=body, headers=bearer(made["read"]))
    other = httpx.post(url, json=body, headers=bearer(made["other"]))

    assert ok.status_code == 200 and np.asarray(ok.json()["predictions"]).shape == (2, 3)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert (read_only.status_code, other.status_code) == (403, 404)
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    assert httpx.get(f"{server.url}/openapi.json").status_code == 401
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
