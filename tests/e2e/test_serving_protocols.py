"""A real `trainyard serve --serving-only` process, driven by `tritonclient` (Open Inference
Protocol) and by TF Serving-format HTTP requests, with and without versions and labels."""

from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

ROWS = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 0.0]], dtype=np.float32)


def client(server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.url.removeprefix("http://"))


def infer_tiny(server: Server, version: str = "", binary: bool = True, request_id: str = "") -> triton.InferResult:
    features = triton.InferInput("features", list(ROWS.shape), "FP32")
    features.set_data_from_numpy(ROWS, binary_data=binary)
    output = triton.InferRequestedOutput("probabilities", binary_data=binary)
    return client(server).infer("tiny", [features], model_version=version, outputs=[output], request_id=request_id)


def test_tritonclient_sees_a_live_ready_server_and_its_models(serving_server: Server) -> None:
    triton_client = client(serving_server)

    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.get_server_metadata()["name"] == "trainyard"
    assert triton_client.is_model_ready("tiny") and triton_client.is_model_ready("tiny", "1")
    latest = triton_client.get_model_metadata("tiny")
    first = triton_client.get_model_metadata("tiny", model_version="1")
    assert latest["versions"] == ["2", "1"] and first["versions"] == ["1"]
    assert latest["platform"] == "onnxruntime_onnx"
    assert latest["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert latest["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    assert not triton_client.is_model_ready("no-such-model")


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_infers_with_and_without_a_version(serving_server: Server, binary: bool) -> None:
    latest = infer_tiny(serving_server, binary=binary, request_id="r-1")
    first = infer_tiny(serving_server, version="1", binary=binary)

    assert latest.get_response()["model_version"] == "2"
    assert latest.get_response()["id"] == "r-1"
    assert first.get_response()["model_version"] == "1"
    for result in (latest, first):
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (2, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert not np.allclose(latest.as_numpy("probabilities"), first.as_numpy("probabilities"))


def test_tritonclient_infers_a_two_input_two_output_model(serving_server: Server) -> None:
    a = triton.InferInput("a", [2, 3], "FP32")
    a.set_data_from_numpy(np.ones((2, 3), np.float32))
    b = triton.InferInput("b", [2, 2], "INT32")
    b.set_data_from_numpy(np.array([[1, 2], [3, 4]], np.int32))

    result = client(serving_server).infer("pair", [a, b])

    assert result.as_numpy("scores").shape == (2, 2)
    assert result.as_numpy("value").shape == (2, 1)


def test_tritonclient_reports_the_servers_errors(serving_server: Server) -> None:
    wrong = triton.InferInput("features", [1, 2], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 2), np.float32))

    with pytest.raises(InferenceServerException, match=r"shape \[4\]"):
        client(serving_server).infer("tiny", [wrong])
    with pytest.raises(InferenceServerException, match="does not exist"):
        client(serving_server).infer("no-such-model", [wrong])


def predict(server: Server, path: str, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/{path}:predict", json=body, timeout=10)


def test_tf_serving_row_and_columnar_formats_agree(serving_server: Server) -> None:
    rows = predict(serving_server, "tiny", {"instances": ROWS.tolist()})
    columns = predict(serving_server, "tiny", {"inputs": ROWS.tolist()})
    named = predict(serving_server, "tiny", {"inputs": {"features": ROWS.tolist()}})
    objects = predict(serving_server, "tiny", {"instances": [{"features": row} for row in ROWS.tolist()]})

    assert rows.status_code == columns.status_code == named.status_code == 200
    expected = np.array(rows.json()["predictions"])
    assert expected.shape == (2, 3)
    for other in (columns.json()["outputs"], named.json()["outputs"]):
        np.testing.assert_array_equal(np.array(other), expected)
    np.testing.assert_array_equal(np.array(objects.json()["predictions"]), expected)


def test_tf_serving_versions_labels_and_signature_name(serving_server: Server) -> None:
    body = {"instances": ROWS.tolist(), "signature_name": "serving_default"}
    latest = predict(serving_server, "tiny", body).json()["predictions"]
    second = predict(serving_server, "tiny/versions/2", body).json()["predictions"]
    first = predict(serving_server, "tiny/versions/1", body).json()["predictions"]
    production = predict(serving_server, "tiny/labels/production", body).json()["predictions"]

    assert latest == second and production == first and first != second


def test_tf_serving_multi_input_rows_answer_objects_keyed_by_output(serving_server: Server) -> None:
    response = predict(
        serving_server,
        "pair",
        {"instances": [{"a": [1, 2, 3], "b": [1, 2]}, {"a": [0, 0, 0], "b": [0, 0]}]},
    )

    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [sorted(p) for p in predictions] == [["scores", "value"]] * 2


def test_tf_serving_status_and_metadata(serving_server: Server) -> None:
    status = httpx.get(f"{serving_server.url}/v1/models/tiny/versions/1").json()
    metadata = httpx.get(f"{serving_server.url}/v1/models/tiny/labels/production/metadata").json()

    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert metadata["model_spec"]["version"] == "1"
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["features"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["features"]["tensor_shape"]["dim"][1]["size"] == "4"
    assert metadata["metadata"]["serving"]["runtime"] == "onnx"


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("no-such-model", {"instances": [[0, 0, 0, 0]]}, 404, "does not exist"),
        ("tiny/versions/9", {"instances": [[0, 0, 0, 0]]}, 404, "version 9"),
        ("tiny/labels/nope", {"instances": [[0, 0, 0, 0]]}, 404, "no label 'nope'"),
        ("tiny", {"instances": [[0, 0]]}, 400, "shape [4]"),
        ("tiny", {"instances": []}, 400, "non-empty"),
        ("tiny", {"rows": [[0, 0, 0, 0]]}, 400, "'instances'"),
        ("tiny", {"instances": [[0, 0, 0, 0]], "signature_name": "other"}, 400, "signature_name"),
        ("tiny", {"instances": [["a", 0, 0, 0]]}, 400, "must be numbers"),
    ],
)
def test_tf_serving_errors_are_the_error_shape(
    serving_server: Server, path: str, body: object, status: int, message: str
) -> None:
    response = predict(serving_server, path, body)

    assert response.status_code == status
    assert message in response.json()["error"]


def test_nan_and_infinity_are_accepted_as_tf_serving_does(serving_server: Server) -> None:
    response = httpx.post(
        f"{serving_server.url}/v1/models/tiny:predict",
        content=b'{"instances": [[NaN, Infinity, -Infinity, 1.0]]}',
        timeout=10,
    )

    assert response.status_code == 200
    assert len(response.json()["predictions"][0]) == 3


def test_invalid_json_is_a_400(serving_server: Server) -> None:
    response = httpx.post(f"{serving_server.url}/v1/models/tiny:predict", content=b"{oops")

    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def test_the_serving_process_never_loaded_tensorflow(serving_server: Server) -> None:
    maps = Path(f"/proc/{serving_server.process.process.pid}/maps").read_text()

    assert "onnxruntime" in maps
    assert "tensorflow" not in maps
