"""Rolling out versions to a running serving process: no restart, no errors, warm first."""

import threading
from collections import Counter

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import Server
from tests.factories import register_version, seed_mlp, wait_for

pytestmark = pytest.mark.e2e

BODY = {"instances": [[0.5, -0.5, 0.25, 1.0]]}


def served_version(server: Server, path: str) -> str:
    response = httpx.post(
        f"{server.url}/v2/models/{path}/infer",
        json={
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "data": BODY["instances"][0],
                }
            ]
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


def test_a_version_registered_elsewhere_is_served_without_a_restart(serving_server: Server) -> None:
    register_version(serving_server.settings, "fresh", seed_mlp(features=4, classes=3, seed=6))
    assert served_version(serving_server, "fresh") == "1"
    model = seed_mlp(features=4, classes=3, hidden=8, seed=7)

    version = register_version(serving_server.settings, "fresh", model)  # as a worker would

    wait_for(
        lambda: served_version(serving_server, "fresh") == str(version),
        timeout=10,
        interval=0.1,
        what=f"the serving process to serve fresh version {version}",
    )
    expected = np.asarray(model(np.array(BODY["instances"], np.float32)))
    got = httpx.post(f"{serving_server.url}/v1/models/fresh:predict", json=BODY).json()
    np.testing.assert_allclose(got["predictions"], expected, rtol=1e-5, atol=1e-6)


def test_moving_a_label_under_load_gives_no_errors_and_switches_after_warm_up(
    serving_server: Server,
) -> None:
    url = f"{serving_server.url}/v1/models/tiny/labels/canary:predict"
    assert httpx.put(f"{serving_server.url}/v1/models/tiny/labels/canary", json={"version": 1}).status_code == 200
    reference = {
        v: httpx.post(f"{serving_server.url}/v1/models/tiny/versions/{v}:predict", json=BODY).json() for v in (1, 2)
    }
    outcomes: Counter[str] = Counter()
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                response = client.post(url, json=BODY)
                if response.status_code != 200:
                    outcomes[f"HTTP {response.status_code}: {response.text[:200]}"] += 1
                elif response.json() == reference[1]:
                    outcomes["v1"] += 1
                elif response.json() == reference[2]:
                    outcomes["v2"] += 1
                else:
                    outcomes["neither"] += 1

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        # Requests are flowing on version 1 before the move, and on version 2 after it.
        wait_for(lambda: outcomes["v1"] >= 20, 30, interval=0.02, what="requests on version 1")
        moved = httpx.put(f"{serving_server.url}/v1/models/tiny/labels/canary", json={"version": 2})
        wait_for(lambda: outcomes["v2"] >= 20, 30, interval=0.02, what="requests on version 2")
    finally:
        stop.set()
    for thread in threads:
        thread.join(timeout=10)

    assert moved.status_code == 200
    assert moved.json()["model_version_status"][0] == {
        **moved.json()["model_version_status"][0],
        "version": "2",
        "state": "AVAILABLE",
    }
    assert set(outcomes) == {"v1", "v2"}, outcomes  # no errors, nothing else
    assert httpx.post(url, json=BODY).json() == reference[2]
