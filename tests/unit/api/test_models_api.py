"""The predict URLs in-process: the fast path's error shape, limits and fall-through."""

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.errors import TooManyRequests
from app.main import create_app
from tests.factories import register_version, seed_mlp


@pytest.fixture
def served(settings: Settings) -> Iterator[TestClient]:
    settings = settings.model_copy(update={"max_predict_bytes": 4096})
    upgrade_to_head(settings)
    register_version(settings, "tiny", seed_mlp(features=4, classes=3, hidden=8))
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


def test_a_full_queue_is_a_429_with_retry_after(served: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def full(*args: object) -> None:
        raise TooManyRequests("the model's queue is full")

    monkeypatch.setattr(served.app.state.serving, "predict", full)  # type: ignore[attr-defined]

    response = served.post("/v1/models/tiny:predict", json={"instances": [[0, 0, 0, 0]]})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "the model's queue is full"


def test_a_body_over_the_limit_is_a_413(served: TestClient) -> None:
    rows = np.zeros((1000, 4)).tolist()  # ~20 kB of JSON

    response = served.post("/v1/models/tiny:predict", json={"instances": rows})

    assert response.status_code == 413 and "MAX_PREDICT_BYTES" in response.json()["error"]


def test_urls_the_fast_path_does_not_match_get_fastapis_answer(served: TestClient) -> None:
    response = served.post("/v1/models/tiny/versions/0:predict", json={"instances": [[0] * 4]})

    assert response.status_code == 422 and "version" in response.json()["error"]


def test_the_metrics_count_requests_per_model_and_version(served: TestClient) -> None:
    served.post("/v1/models/tiny:predict", json={"instances": [[0, 0, 0, 0]]})
    served.post("/v1/models/tiny:predict", json={"instances": [[0, 0]]})

    text = served.get("/metrics").text

    assert (
        'trainyard_predict_requests_total{model="tiny",outcome="client_error",protocol="tfserving",version="1"}' in text
    )
    assert 'trainyard_batch_size_rows_bucket{le="1.0",model="tiny",version="1"}' in text
    assert "trainyard_model_cache_hits_total" in text
