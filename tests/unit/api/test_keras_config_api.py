"""`keras_config` over HTTP: Keras's whole model zoo is accepted, and any malformed or oversized
config is a 4xx naming its place (never a 500), with the caps checked before anything is built."""

import json
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.main import create_app
from tests.factories import npz_bytes

# The smallest input each keras.applications architecture takes (32 x 32 unless said here).
SMALLEST = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
APPLICATIONS = sorted(name for name in dir(keras.applications) if name[:1].isupper())
SPARSE = {"loss": "sparse_categorical_crossentropy"}


@pytest.fixture(scope="module")
def zoo() -> dict[str, dict[str, Any]]:
    """`to_json()` of every keras.applications model, weights=None, built once for the module."""
    configs = {}
    for name in APPLICATIONS:
        size = SMALLEST.get(name, 32)
        model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
        configs[name] = json.loads(model.to_json())
        keras.backend.clear_session()
    return configs


def job(dataset_id: str, keras_config: Any, **extra: Any) -> dict[str, Any]:
    return {"dataset_id": dataset_id, "model": {"keras_config": keras_config}, "compile": SPARSE, **extra}


def image_dataset(client: TestClient, size: int) -> str:
    x = np.zeros((10, size, size, 3), dtype=np.uint8)
    response = client.post("/v1/datasets", files={"file": (f"i{size}.npz", npz_bytes(x=x, y=np.arange(10)))})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.timeout(900)  # building the 40 models for their configs: ~100 s on an idle 2-core machine
def test_every_keras_application_is_accepted(client: TestClient, zoo: dict[str, dict[str, Any]]) -> None:
    datasets = {size: image_dataset(client, size) for size in {32, *SMALLEST.values()}}
    refused = {}
    for name, config in zoo.items():
        response = client.post("/v1/jobs", json=job(datasets[SMALLEST.get(name, 32)], config))
        if response.status_code != 202:
            refused[name] = response.json()["error"]
    assert refused == {}
    assert len(zoo) == len(APPLICATIONS) >= 40


def chain(n: int) -> dict[str, Any]:
    """A functional config of n Dense layers in a chain, written as Keras writes it."""

    def tensor(name: str) -> dict[str, Any]:
        return {"class_name": "__keras_tensor__", "config": {"shape": [None, 4], "keras_history": [name, 0, 0]}}

    layers: list[dict[str, Any]] = [
        {"module": "keras.layers", "class_name": "InputLayer", "name": "x", "config": {"batch_shape": [None, 4]}}
    ]
    for index in range(n):
        source = layers[-1]["name"]
        layers.append(
            {
                "module": "keras.layers",
                "class_name": "Dense",
                "name": f"d{index}",
                "config": {"units": 3 if index == n - 1 else 4},
                "inbound_nodes": [{"args": [tensor(source)], "kwargs": {}}],
            }
        )
    # Listed last-first: the translator must order them (in linear time) itself.
    body = {"layers": [layers[0], *reversed(layers[1:])], "input_layers": [["x", 0, 0]]}
    return {"module": "keras", "class_name": "Functional", "config": {**body, "output_layers": [[f"d{n - 1}", 0, 0]]}}


def test_a_model_over_the_layer_cap_is_a_422_naming_the_setting(client: TestClient, dataset_id: str) -> None:
    response = client.post("/v1/jobs", json=job(dataset_id, chain(5_000)))
    assert response.status_code == 422
    assert response.json()["error"] == (
        "model: keras_config: the model has 5,001 layers (nested models included), over the limit of 2,000 "
        "(TRAINYARD_MAX_LAYERS)"
    )


@pytest.fixture
def big_client(tmp_path: Any) -> Iterator[TestClient]:
    """Caps raised so a long chain passes the layer cap; no model of this size is built at the door."""
    settings = Settings(home=tmp_path / "home", max_layers=10_000)
    upgrade_to_head(settings)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_a_long_chain_listed_out_of_order_is_ordered_and_accepted(big_client: TestClient) -> None:
    from tests.factories import csv_bytes

    upload = big_client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes())})
    response = big_client.post("/v1/jobs", params={"view": "full"}, json=job(upload.json()["id"], chain(5_000)))
    assert response.status_code == 202, response.text
    layers = response.json()["spec"]["model"]["layers"]
    assert [layer["name"] for layer in layers[:3]] == ["d0", "d1", "d2"] and layers[-1]["name"] == "d4999"


def test_the_layer_cap_holds_for_hand_written_graphs_too(big_client: TestClient) -> None:
    from tests.factories import csv_bytes

    upload = big_client.post("/v1/datasets", files={"file": ("d.csv", csv_bytes())})
    dense = [{"type": "Dense", "units": 4}] * 10_001
    body = {"dataset_id": upload.json()["id"], "model": {"layers": dense}, "compile": SPARSE}
    response = big_client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert "over the limit of 10,000 (TRAINYARD_MAX_LAYERS)" in response.json()["error"]


def test_huge_activations_from_few_parameters_are_a_422_before_anything_runs(
    client: TestClient, dataset_id: str
) -> None:
    layers = [
        {"type": "Dense", "units": 1000},
        {"type": "RepeatVector", "n": 10**6},
        {"type": "GlobalAveragePooling1D"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    ]
    response = client.post("/v1/jobs", json={"dataset_id": dataset_id, "model": {"layers": layers}, "compile": SPARSE})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error.startswith("model.layers[1]: the model's activations for one batch of 32 reach about 119")
    assert "(TRAINYARD_MAX_ACTIVATION_BYTES)" in error


def tensor_ref(history: Any) -> dict[str, Any]:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": history}}


def small_functional() -> dict[str, Any]:
    x = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(4, name="hidden")(x)
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")], name="head")
    return json.loads(keras.Model(x, inner(hidden + 1.0)).to_json())


def with_first_call_arg(arg: Any) -> dict[str, Any]:
    config = small_functional()
    config["config"]["layers"][1]["inbound_nodes"][0]["args"] = [arg]
    return config


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


MALFORMED = {
    "config is a list": (
        {"module": "keras", "class_name": "Functional", "config": []},
        "model: keras_config.config: Input should be a valid dictionary",
    ),
    "a layer's config is a list": (
        {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": [1]}]}},
        "model: keras_config.config.layers[0].config: Input should be a valid dictionary",
    ),
    "keras_history of one item": (with_first_call_arg(tensor_ref(["x"])), "keras_history"),
    "keras_history of numbers": (with_first_call_arg(tensor_ref([1, 2, 3])), "keras_history[0]"),
    "keras_history a string": (with_first_call_arg(tensor_ref("x")), "keras_history"),
    "keras_history to nowhere": (with_first_call_arg(tensor_ref(["nowhere", 0, 0])), "unknown nodes ['nowhere']"),
    "an inbound node that is a string": (
        {**small_functional(), "config": {**small_functional()["config"], "layers": [
            small_functional()["config"]["layers"][0],
            {**small_functional()["config"]["layers"][1], "inbound_nodes": ["x"]},
        ]}},
        "inbound_nodes[0]",
    ),
    "deep nesting": ({"class_name": "Sequential", "config": {"layers": deep(200)}}, "nested deeper than 64 levels"),
    "NaN": (
        {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"x": float("nan")}}]}},
        "plain JSON",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_keras_config_is_a_422_naming_the_place(client: TestClient, dataset_id: str, case: str) -> None:
    config, expected = MALFORMED[case]
    response = client.post("/v1/jobs", content=json.dumps(job(dataset_id, config)).encode(),
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 422, response.text
    assert expected in response.json()["error"]


def test_a_nested_object_without_module_is_read_as_keras_own(client: TestClient, dataset_id: str) -> None:
    config = small_functional()
    del config["config"]["layers"][1]["config"]["kernel_initializer"]["module"]
    assert client.post("/v1/jobs", json=job(dataset_id, config)).status_code == 202


# --- property: any JSON in any place of a real config → 202 or a 4xx with a message ----------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["__keras_tensor__", "Dense", "keras.layers", "Sequential", "x", "hidden", "InputLayer"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["class_name", "module", "config", "layers", "keras_history", "args", "kwargs", "name",
                         "inbound_nodes", "batch_shape", "units", "registered_name"]),
        inner,
        max_size=4,
    ),
    max_leaves=8,
)  # fmt: skip


def places(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from places(item, (*path, index))


BASE = small_functional()
PLACES = list(places(BASE))[1:]


def replaced(path: tuple[Any, ...], new: Any) -> Any:
    config = json.loads(json.dumps(BASE))
    target = config
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return config


@given(path=st.sampled_from(PLACES), new=json_values)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_json_anywhere_in_a_config_is_accepted_or_a_4xx_with_a_message(
    client: TestClient, dataset_id: str, path: tuple[Any, ...], new: Any
) -> None:
    response = client.post("/v1/jobs", json=job(dataset_id, replaced(path, new)))
    assert response.status_code == 202 or 400 <= response.status_code < 500, response.text
    if response.status_code != 202:
        assert response.json()["error"]
