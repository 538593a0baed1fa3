"""Concurrent uploads of one file against PostgreSQL: one dataset, whoever commits first."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.factories import csv_bytes

pytestmark = pytest.mark.integration

UPLOADS = 6


def test_concurrent_uploads_of_the_same_bytes_make_one_dataset(api: TestClient, production_settings: Settings) -> None:
    # Big enough (a few thousand rows) that each upload is still parsing when the others check
    # for an existing dataset, so several reach the insert and all but one lose the race.
    data = csv_bytes(rows=5000, features=8, seed=1234)
    start = threading.Barrier(UPLOADS)

    def upload(_: int) -> httpx.Response:
        start.wait(timeout=30)
        return api.post("/v1/datasets", files={"file": ("race.csv", data)}, data={"name": "race"})

    with ThreadPoolExecutor(UPLOADS) as pool:
        responses = list(pool.map(upload, range(UPLOADS)))

    assert sorted(r.status_code for r in responses) == [200] * (UPLOADS - 1) + [201], [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    listed = [d["id"] for d in api.get("/v1/datasets", params={"limit": 500}).json()["items"] if d["name"] == "race"]
    assert listed == list(ids)
    # The losers' parsed copies are gone: no stored directory the database does not know.
    known = {d["id"] for d in api.get("/v1/datasets", params={"limit": 500}).json()["items"]}
    stored = {p.name for p in production_settings.datasets_dir.iterdir() if not p.name.startswith(".")}
    assert ids <= stored and stored <= known, stored - known
    assert list((production_settings.datasets_dir / ".incoming").iterdir()) == []
