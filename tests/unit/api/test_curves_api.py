"""GET /v1/jobs/{id}/curves.svg|.png: one panel per metric, training vs validation, the attempt
boundary of a resumed job marked."""

import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.jobs import curves, states
from app.jobs.states import ResumePoint
from tests.factories import job_request
from tests.job_moves import claim, epoch, release


def logs(n: int) -> dict[str, float]:
    return {"loss": 1 / n, "accuracy": 1 - 1 / n, "val_loss": 1.5 / n, "val_accuracy": 0.9 - 1 / n}


@pytest.fixture
def resumed_job(client: TestClient, settings: Settings, dataset_id: str) -> str:
    """Epochs 1-2 by attempt 1; attempt 2 resumed from epoch 1 and trained epochs 2-3."""
    job_id = str(client.post("/v1/jobs", json=job_request(dataset_id, name="curvy")).json()["id"])
    first = claim(settings, job_id)
    epoch(settings, job_id, first, 1, logs(1))
    epoch(settings, job_id, first, 2, logs(2))
    release(settings, job_id)
    second = claim(settings, job_id, ResumePoint(attempt=1, epoch=1, batch=None, saved_at=states.utcnow()))
    epoch(settings, job_id, second, 2, logs(2))
    epoch(settings, job_id, second, 3, logs(3))
    return job_id


def svg_texts(body: bytes) -> list[str]:
    return [element.text or "" for element in ET.fromstring(body).iter() if element.tag.endswith("text")]


def test_the_svg_has_a_panel_per_metric_both_splits_and_the_attempt_boundary(
    client: TestClient, resumed_job: str
) -> None:
    response = client.get(f"/v1/jobs/{resumed_job}/curves.svg")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    texts = svg_texts(response.content)
    assert {"loss", "accuracy", "training", "validation", "attempt 2"} <= set(texts)
    assert "attempt 1" not in texts  # epochs 1 is attempt 1's; the mark is where attempt 2 starts
    assert "curvy (running)" in texts


def test_the_png_is_a_png_and_an_unchanged_history_is_not_sent_again(client: TestClient, resumed_job: str) -> None:
    first = client.get(f"/v1/jobs/{resumed_job}/curves.png")
    again = client.get(f"/v1/jobs/{resumed_job}/curves.png", headers={"If-None-Match": first.headers["etag"]})

    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert again.status_code == 304 and again.content == b""


def test_a_new_epoch_changes_the_picture(client: TestClient, settings: Settings, resumed_job: str) -> None:
    before = client.get(f"/v1/jobs/{resumed_job}/curves.svg").headers["etag"]
    epoch(settings, resumed_job, 2, 4, logs(4))

    after = client.get(f"/v1/jobs/{resumed_job}/curves.svg", headers={"If-None-Match": before})

    assert after.status_code == 200 and after.headers["etag"] != before


def test_a_job_without_epochs_draws_an_empty_panel_and_an_unknown_job_is_404(
    client: TestClient, dataset_id: str
) -> None:
    job_id = client.post("/v1/jobs", json=job_request(dataset_id)).json()["id"]

    empty = client.get(f"/v1/jobs/{job_id}/curves.svg")

    assert empty.status_code == 200 and "no epoch finished yet" in svg_texts(empty.content)
    assert client.get("/v1/jobs/nope/curves.png").status_code == 404


def test_the_openapi_declares_the_picture_content_types(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert "image/svg+xml" in paths["/v1/jobs/{job_id}/curves.svg"]["get"]["responses"]["200"]["content"]
    assert "image/png" in paths["/v1/jobs/{job_id}/curves.png"]["get"]["responses"]["200"]["content"]


def test_panels_put_loss_first_and_pair_validation_with_training() -> None:
    points = [curves.EpochPoint(1, 1, {"val_mae": 1.0, "mae": 2.0, "loss": 3.0, "val_loss": 4.0, "note": "x"})]

    assert curves.panels(points) == ["loss", "mae"]
    assert curves.attempt_boundaries(points) == []


def test_requests_for_the_same_picture_at_once_share_one_render() -> None:
    points = [curves.EpochPoint(n, 1, {"loss": 1.0 / n}) for n in range(1, 4)]
    key = curves.etag("shared-render-job", "t", points, curves.Format.SVG)
    with ThreadPoolExecutor(max_workers=8) as pool:
        pictures = list(pool.map(lambda _: curves.render_once(key, "t", points, curves.Format.SVG), range(8)))
    other = curves.etag("shared-render-job", "t", points[:2], curves.Format.SVG)

    assert len({id(picture) for picture in pictures}) == 1  # one render, the same bytes for all eight
    assert pictures[0].startswith(b"<?xml")
    assert curves.render_once(other, "t", points[:2], curves.Format.SVG) is not pictures[0]
