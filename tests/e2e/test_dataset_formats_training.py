"""Over HTTP against an embedded `trainyard serve`: every upload format trains, and predict takes
raw rows (text categories, objects keyed by column) with nothing preprocessed by hand."""

from typing import Any

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import Server
from tests.factories import image_zip_bytes, jsonl_bytes, npz_bytes, parquet_bytes, wait_for

pytestmark = pytest.mark.e2e


def pets(rows: int = 48) -> dict[str, list[Any]]:
    """A numeric and a text feature and a text label that depends on both."""
    rng = np.random.default_rng(7)
    size = rng.normal(10, 3, rows).round(2).tolist()
    colour = rng.choice(["red", "green", "blue"], rows).tolist()
    kind = ["cat" if s < 10 or c == "red" else "dog" for s, c in zip(size, colour, strict=True)]
    return {"size": size, "colour": colour, "kind": kind}


def csv_text(columns: dict[str, list[Any]]) -> bytes:
    lines = [",".join(columns)] + [",".join(str(v) for v in row) for row in zip(*columns.values(), strict=True)]
    return ("\n".join(lines) + "\n").encode()


def upload(server: Server, name: str, data: bytes, **fields: str) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/v1/datasets", files={"file": (name, data)}, data=fields, timeout=60)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def train(server: Server, dataset: dict[str, Any], layers: list[dict[str, Any]], name: str) -> str:
    body = {
        "dataset_id": dataset["id"],
        "model": {"layers": layers},
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 2, "batch_size": 8, "test_split": 0.25},
        "preprocessing": {"standardize": True},
        "register_as": name,
    }
    response = httpx.post(f"{server.url}/v1/jobs", json=body, timeout=60)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_every_format_trains_and_predict_takes_raw_rows(server: Server) -> None:
    table = pets()
    classifier = [
        {"type": "Dense", "units": 8, "activation": "relu"},
        {"type": "Dense", "units": 2, "activation": "softmax"},
    ]
    rng = np.random.default_rng(0)
    jobs = {
        "pets-csv": train(server, upload(server, "pets.csv", csv_text(table)), classifier, "pets-csv"),
        "pets-parquet": train(server, upload(server, "pets.parquet", parquet_bytes(table)), classifier, "pets-parquet"),
        "pets-jsonl": train(server, upload(server, "pets.jsonl", jsonl_bytes(table)), classifier, "pets-jsonl"),
        "arrays": train(
            server,
            upload(server, "arrays.npz", npz_bytes(x=rng.random((32, 3), dtype=np.float32), y=rng.integers(0, 2, 32))),
            classifier,
            "arrays",
        ),
        "pictures": train(
            server,
            upload(server, "pictures.zip", image_zip_bytes({"cat": 8, "dog": 8}), image_size="8,8"),
            [{"type": "Rescaling", "scale": 1 / 255}, {"type": "Flatten"}, *classifier],
            "pictures",
        ),
    }

    def finished() -> dict[str, Any] | None:
        states = {label: httpx.get(f"{server.url}/v1/jobs/{job}").json() for label, job in jobs.items()}
        return states if all(s["status"] in ("succeeded", "failed", "cancelled") for s in states.values()) else None

    states = wait_for(finished, timeout=400, interval=1.0, what="the jobs to finish")
    assert {label: s["error"] for label, s in states.items() if s["status"] != "succeeded"} == {}
    assert "test_accuracy" in states["pets-csv"]["metrics"]

    raw_rows = {
        "class_names": True,
        "instances": [{"size": 4.0, "colour": "red"}, {"colour": "blue", "size": 16.0}, [9.5, "green"]],
    }
    for model in ("pets-csv", "pets-parquet", "pets-jsonl"):
        response = httpx.post(f"{server.url}/v1/models/{model}:predict", json=raw_rows, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["predictions"]) == 3 and set(body["class_names"]) <= {"cat", "dog"}
    unknown = httpx.post(
        f"{server.url}/v1/models/pets-csv:predict", json={"instances": [{"size": 1, "colour": "pink"}]}, timeout=30
    )
    assert unknown.status_code == 400 and "unknown category 'pink'" in unknown.json()["error"]
