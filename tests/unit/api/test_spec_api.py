"""/v1/spec and spec validation over HTTP: discoverable, and never a 500 whatever is sent."""

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import job_request
from tests.unit.ml.test_spec_properties import models


def test_the_schema_is_the_job_body_schema_and_is_in_the_openapi(client: TestClient) -> None:
    schema = client.get("/v1/spec/schema").json()
    assert {"dataset_id", "model", "compile", "fit"} <= set(schema["properties"])
    assert "JobCreate" in client.get("/openapi.json").json()["components"]["schemas"]


def test_the_catalog_lists_layers_optimizers_and_more_with_defaults(client: TestClient) -> None:
    catalog = client.get("/v1/spec/catalog").json()
    dense = catalog["layers"]["Dense"]["arguments"]
    assert dense["units"]["required"] is True
    assert dense["kernel_initializer"]["default"] == "glorot_uniform"
    assert {"Conv2D", "LSTM", "GRU", "MultiHeadAttention", "Bidirectional", "RandomFlip"} <= set(catalog["layers"])
    assert {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Lion"} <= set(
        catalog["optimizers"]["objects"]
    )
    assert catalog["optimizers"]["objects"]["SGD"]["arguments"]["momentum"]["default"] == 0.0
    assert {"ExponentialDecay", "CosineDecay", "PiecewiseConstantDecay"} <= set(catalog["schedules"])
    assert "huber" in catalog["losses"]["names"] and "gelu" in catalog["activations"]


def test_the_catalog_lists_the_other_spellings_keras_takes(client: TestClient) -> None:
    catalog = client.get("/v1/spec/catalog").json()
    assert catalog["optimizers"]["aliases"]["RMSprop"] == "rmsprop"
    assert catalog["losses"]["aliases"]["CategoricalCrossentropy"] == "categorical_crossentropy"
    assert catalog["initializers"]["aliases"]["VarianceScaling"] == {"type": "VarianceScaling"}
    assert catalog["layers"]["Discretization"]["arguments"]["num_bins"]["required"] is False


def test_a_keras_config_with_a_lambda_is_a_422_and_no_job_is_created(client: TestClient, dataset_id: str) -> None:
    config = {
        "class_name": "Sequential",
        "config": {"layers": [{"module": "keras.layers", "class_name": "Lambda", "config": {}}]},
    }
    response = client.post("/v1/jobs", json=job_request(dataset_id, model={"keras_config": config}))
    assert response.status_code == 422
    assert response.json()["error"] == (
        "model: keras_config.config.layers[0] (Lambda): Lambda is not allowed: it runs code or reads files"
    )
    assert client.get("/v1/jobs").json()["items"] == []


def test_conv2d_on_tabular_features_is_a_422_with_a_sentence(client: TestClient, dataset_id: str) -> None:
    layers = [{"type": "Conv2D", "filters": 2, "kernel_size": 3}, {"type": "Flatten"}, {"type": "Dense", "units": 3}]
    response = client.post("/v1/jobs", json=job_request(dataset_id, model={"layers": layers}))
    assert response.status_code == 422
    assert response.json()["error"] == (
        "model.layers[0]: Conv2D needs input of rank 4 (batch, height, width, channels); it gets (batch, 4). "
        "Reshape the features (a Reshape layer) or use Dense."
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(model=models, compile_=st.dictionaries(st.sampled_from(["loss", "optimizer", "metrics"]), st.text(max_size=8)))
def test_no_spec_makes_the_server_fail(
    client: TestClient, dataset_id: str, model: dict[str, Any], compile_: Any
) -> None:
    body = {"dataset_id": dataset_id, "model": model, "compile": compile_ or {"loss": "mse"}}
    # json.dumps writes NaN and Infinity as bare tokens, as some clients do: they must not hurt either.
    response = client.post("/v1/jobs", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code in (202, 422), response.text
    if response.status_code == 422:
        assert response.json()["error"]
