"""The SDK's results are whole objects (a dataset's schema, a job's spec) although the API answers
summaries by default: against the in-process app, through the SDK's own requests."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.client import Client
from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.main import create_app
from tests.factories import csv_bytes, job_request


@pytest.fixture
def sdk(settings: Settings) -> Iterator[Client]:
    upgrade_to_head(settings)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as app:
        client = Client("http://127.0.0.1", retries=0)
        client.transport.http = app  # a TestClient is an httpx.Client: the SDK's requests, unchanged
        yield client


def test_sdk_datasets_carry_their_whole_schema(sdk: Client, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(csv_bytes(features=3))
    uploaded = sdk.datasets.upload(path, target="label")
    assert uploaded.features["columns"] == ["f0", "f1", "f2"] and uploaded.target["classes"] == [0, 1, 2]
    assert sdk.datasets.get(uploaded.id).features["column_types"][0]["kind"] == "numeric"
    assert sdk.datasets.list()[0].features["columns"] == ["f0", "f1", "f2"]


def test_sdk_jobs_carry_their_stored_spec(sdk: Client, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(csv_bytes())
    dataset = sdk.datasets.upload(path)
    job = sdk.jobs.submit(job_request(dataset.id))
    assert job.info.spec["fit"]["batch_size"] == 16
    assert job.refresh().spec["compile"]["optimizer"] == "adam"
    assert sdk.jobs.get(job.id).info.spec["model"]["layers"][0]["units"] == 8
    assert sdk.jobs.list()[0].spec["fit"]["epochs"] == 3
    assert job.cancel().spec["fit"]["epochs"] == 3
