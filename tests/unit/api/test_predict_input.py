"""Hostile predict and infer bodies through HTTP: each is a 4xx naming the field, never a 500,
and never silently changed into something else (null into NaN, 1000 into an int8 -24)."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.main import create_app
from tests.factories import register_version, seed_mlp

ROW = [0.5, 0.5, 0.5, 0.5]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(home=tmp_path_factory.mktemp("served") / "home", max_predict_rows=50)
    upgrade_to_head(settings)
    register_version(settings, "tiny", seed_mlp(features=4, classes=3, hidden=8))
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture(scope="module")
def input_name(served: TestClient) -> str:
    return str(served.get("/v2/models/tiny").json()["inputs"][0]["name"])


def post_raw(client: TestClient, url: str, body: str | bytes, **headers: str) -> Any:
    return client.post(url, content=body, headers={"content-type": "application/json", **headers})


@pytest.mark.parametrize(
    ("instances", "named"),
    [
        ("[[null, 0, 0, 0]]", "null"),
        ('[[{"a": 1}, 0, 0, 0]]', "dict"),
        ('[["text", 0, 0, 0]]', "str"),
        ("[[" + "9" * 50 + ", 0, 0, 0]]", "float32"),  # orjson reads it as 1e50
        ("[[NaN, " + "9" * 50 + ", 0, 0]]", "beyond 64 bits"),  # the standard library as an int
        ("[[1e39, 0, 0, 0]]", "float32"),
        ("[[0, 0, 0], [0, 0, 0, 0]]", "instances"),
    ],
)
def test_tfserving_instances_that_are_not_numbers_are_a_400(served: TestClient, instances: str, named: str) -> None:
    response = post_raw(served, "/v1/models/tiny:predict", f'{{"instances": {instances}}}')

    assert response.status_code == 400, response.text
    assert named in response.json()["error"]


def test_more_rows_than_a_request_may_hold_is_a_413_naming_the_setting(served: TestClient) -> None:
    response = served.post("/v1/models/tiny:predict", json={"instances": [ROW] * 51})

    assert response.status_code == 413 and "TRAINYARD_MAX_PREDICT_ROWS" in response.json()["error"]


def test_the_columnar_format_counts_rows_too(served: TestClient) -> None:
    response = served.post("/v1/models/tiny:predict", json={"inputs": [ROW] * 51})

    assert response.status_code == 413


def tensor(input_name: str, **fields: Any) -> dict[str, Any]:
    return {"name": input_name, "shape": [1, 4], "datatype": "FP32", "data": ROW, **fields}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"data": [None, 0, 0, 0]}, "inputs[0].data"),
        ({"data": [{"a": 1}, 0, 0, 0]}, "inputs[0].data"),
        ({"data": [[1], 0, 0, 0]}, "inputs[0].data"),
        ({"shape": [True, 4]}, "inputs[0].shape"),
        ({"shape": [1, 10**30]}, "inputs[0].shape"),
        ({"datatype": "BYTES", "data": [1, 2, 3, 4]}, "BYTES data must be strings"),
        ({"datatype": "BYTES", "data": [10**9, 0, 0, 0]}, "BYTES data must be strings"),
        ({"datatype": "INT8", "data": [1000, 0, 0, 0]}, "int8 integers"),
        ({"datatype": "BOOL", "data": [1, 0, 0, 0]}, "BOOL data must be true or false"),
        ({"parameters": [1]}, "inputs[0].parameters must be an object"),
        ({"parameters": {"binary_data_size": True}}, "binary_data_size"),
        ({"name": ["x"]}, "inputs[0].name"),
        ({"shape": [51, 4], "data": ROW * 51}, "TRAINYARD_MAX_PREDICT_ROWS"),
    ],
)
def test_v2_tensors_are_checked_by_type_before_numpy(
    served: TestClient, input_name: str, change: dict[str, Any], named: str
) -> None:
    body = {"inputs": [tensor(input_name, **change)]}

    response = served.post("/v2/models/tiny/infer", json=body)

    assert response.status_code in (400, 413), response.text
    assert named in response.json()["error"]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"parameters": "binary"}, "parameters must be an object"),
        ({"parameters": {"binary_data_output": "yes"}}, "binary_data_output"),
        ({"outputs": [{"name": 5}]}, "outputs[0].name"),
        ({"outputs": [{"name": "x", "parameters": 7}]}, "outputs[0]"),
        ({"id": {"a": 1}}, "'id'"),
    ],
)
def test_v2_request_fields_of_the_wrong_type_are_a_400(
    served: TestClient, input_name: str, extra: dict[str, Any], named: str
) -> None:
    response = served.post("/v2/models/tiny/infer", json={"inputs": [tensor(input_name)], **extra})

    assert response.status_code == 400, response.text
    assert named in response.json()["error"]


def test_bool_binary_tensors_hold_only_bytes_0_and_1(served: TestClient, input_name: str) -> None:
    header = json.dumps(
        {"inputs": [{"name": input_name, "shape": [1, 4], "datatype": "BOOL", "parameters": {"binary_data_size": 4}}]}
    ).encode()

    response = post_raw(
        served,
        "/v2/models/tiny/infer",
        header + bytes([0, 1, 2, 1]),
        **{"inference-header-content-length": str(len(header))},
    )

    assert response.status_code == 400 and "bytes 0 or 1" in response.json()["error"]


def test_a_good_request_after_the_bad_ones_still_answers(served: TestClient, input_name: str) -> None:
    assert served.post("/v2/models/tiny/infer", json={"inputs": [tensor(input_name)]}).status_code == 200
    assert served.post("/v1/models/tiny:predict", json={"instances": [ROW]}).status_code == 200
