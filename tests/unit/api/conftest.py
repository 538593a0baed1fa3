"""An in-process API on embedded settings (SQLite file, local queue), with no worker running."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.main import create_app
from tests.factories import csv_bytes


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    upgrade_to_head(settings)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def dataset_id(client: TestClient) -> str:
    response = client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes())}, data={"name": "tiny"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
