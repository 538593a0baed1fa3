"""Importance and explanations of a model a real worker trained, over HTTP (PostgreSQL, Redis):
the worker's permutation importance ranks the informative column above pure noise, and
`:explain` takes the dataset's raw rows (a text category included) and answers per column."""

import csv
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.factories import job_request, wait_for
from tests.services import TrainyardProcess

pytestmark = pytest.mark.integration

COLORS = ["red", "green", "blue"]


def made_csv(rows: int = 400, seed: int = 7100) -> bytes:
    """`signal` decides the label; `noise` is pure noise; `color` is a category (text)."""
    rng = np.random.default_rng(seed)
    signal, noise = rng.normal(size=rows), rng.normal(size=rows)
    colors = rng.choice(COLORS, size=rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["signal", "noise", "color", "label"])
    for s, n, c in zip(signal, noise, colors, strict=True):
        writer.writerow([f"{s:.4f}", f"{n:.4f}", c, "high" if s > 0 else "low"])
    return out.getvalue().encode()


def test_the_worker_measures_importance_and_explain_answers_raw_rows_per_column(
    api: TestClient, worker: TrainyardProcess
) -> None:
    uploaded = api.post("/v1/datasets", files={"file": ("made.csv", made_csv())})
    assert uploaded.status_code == 201, uploaded.text
    request = job_request(
        uploaded.json()["id"],
        register_as="explained",
        model={
            "layers": [
                {"type": "Dense", "units": 16, "activation": "tanh"},
                {"type": "Dense", "units": 2, "activation": "softmax"},
            ]
        },
        fit={"epochs": 15, "batch_size": 32, "test_split": 0.25, "seed": 3},
    )
    job = api.post("/v1/jobs", json=request)
    assert job.status_code == 202, job.text
    done = wait_for(
        lambda: (j := api.get(f"/v1/jobs/{job.json()['id']}").json())["status"] in {"succeeded", "failed"} and j,
        180,
        interval=0.3,
        what="the training job",
    )
    assert done["status"] == "succeeded", done["error"]

    importance = api.get("/v1/models/explained/versions/1/importance")
    assert importance.status_code == 200, importance.text
    body = importance.json()
    by_name = {f["name"]: f for f in body["features"]}
    assert set(by_name) == {"signal", "noise", "color"} and body["metric"].startswith("loss")
    assert by_name["signal"]["importance"] > by_name["noise"]["importance"] + 3 * by_name["noise"]["std"]
    assert by_name["signal"]["importance"] > 0.1
    assert api.get("/v1/models/explained/versions/1/metadata").json()["metadata"]["importance"] == body

    rows = [{"signal": 1.2, "noise": -0.3, "color": "blue"}, {"signal": -0.8, "noise": 0.5, "color": "red"}]
    explained = api.post("/v1/models/explained:explain", json={"instances": rows})
    assert explained.status_code == 200, explained.text
    answer = explained.json()
    for prediction, explanation in zip(answer["predictions"], answer["explanations"], strict=True):
        attributions = explanation["attributions"]
        assert set(attributions) == {"signal", "noise", "color"}
        assert explanation["target"] == int(np.argmax(prediction))
        spread = sum(attributions.values()) - explanation["convergence_delta"]  # f(x) - f(baseline)
        assert abs(explanation["convergence_delta"]) < 0.05 * abs(spread)
        assert abs(attributions["signal"]) > abs(attributions["noise"])
