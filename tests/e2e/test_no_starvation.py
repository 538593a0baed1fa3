"""While one client sends the worst requests in a loop, another's /healthz and predict stay fast.

The one test where a latency bound is the point: it is generous (1 s at p99, against ~1 ms
unloaded) so that only a frozen event loop fails it, not a slow CI machine.
"""

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.config import Settings
from tests.attacks import attacks
from tests.e2e.conftest import serving_tiny_model
from tests.services import TrainyardProcess

pytestmark = pytest.mark.e2e

P99_BOUND_S = 1.0
ROUNDS = 3  # of every attack, back to back


@dataclass
class Served:
    url: str
    settings: Settings
    input_name: str
    process: TrainyardProcess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving_tiny_model(Path(tmp_path_factory.mktemp("starvation-home")), max_upload_bytes=4_000_000) as server:
        input_name = httpx.get(f"{server.url}/v2/models/tiny", timeout=60).json()["inputs"][0]["name"]
        yield Served(server.url, server.settings, input_name, server.process)


@dataclass
class Latencies:
    healthz: list[float] = field(default_factory=list)
    predict: list[float] = field(default_factory=list)

    def p99(self, values: list[float]) -> float:
        return float(np.percentile(values, 99))


def test_the_worst_requests_do_not_starve_health_and_predict(served: Served) -> None:
    worst = attacks("tiny", served.input_name, served.settings.max_upload_bytes, served.settings.max_predict_bytes)
    done = threading.Event()
    answers: list[tuple[str, int]] = []
    latencies = Latencies()

    def attack() -> None:
        with httpx.Client(base_url=served.url, timeout=120) as client:
            for _ in range(ROUNDS):
                for spec in worst:
                    answers.append((spec.name, client.request(**spec.request()).status_code))
        done.set()

    def measure() -> None:
        with httpx.Client(base_url=served.url, timeout=120) as client:
            while not done.is_set():
                response = client.get("/healthz")
                latencies.healthz.append(response.elapsed.total_seconds())
                response = client.post("/v1/models/tiny:predict", json={"instances": [[0.5, 0.5, 0.5, 0.5]]})
                assert response.status_code == 200, response.text
                latencies.predict.append(response.elapsed.total_seconds())

    attacker = threading.Thread(target=attack)
    attacker.start()
    measure()
    attacker.join()

    assert len(answers) == ROUNDS * len(worst)
    server_errors = [(name, status) for name, status in answers if status >= 500 and status != 503]
    assert server_errors == []
    assert all(status < 300 or status >= 400 for name, status in answers if name != "predict: 10,000 rows")
    assert len(latencies.healthz) >= 10
    assert latencies.p99(latencies.healthz) < P99_BOUND_S, sorted(latencies.healthz)[-5:]
    assert latencies.p99(latencies.predict) < P99_BOUND_S, sorted(latencies.predict)[-5:]


def local_port(response: httpx.Response) -> int:
    return int(response.extensions["network_stream"].get_extra_info("socket").getsockname()[1])


def test_a_client_error_keeps_the_connection_alive(served: Served) -> None:
    bad_requests = [
        ("POST", "/v1/models/tiny:predict", {"instances": [[None, 0, 0, 0]]}),
        (
            "POST",
            "/v2/models/tiny/infer",
            {"inputs": [{"name": served.input_name, "shape": [True], "datatype": "FP32"}]},
        ),
        ("GET", "/v1/models/tiny/versions/99999999999999999999", None),
        (
            "POST",
            "/v1/jobs",
            {"dataset_id": "x", "model": {"layers": []}, "compile": {"loss": "mse"}, "fit": {"epochs": True}},
        ),
    ]
    with httpx.Client(base_url=served.url, timeout=60) as client:
        first = local_port(client.get("/healthz"))
        for method, url, body in bad_requests:
            response = client.request(method, url, json=body)
            assert 400 <= response.status_code < 500, response.text
            assert local_port(response) == first, (method, url)
        assert local_port(client.get("/healthz")) == first
