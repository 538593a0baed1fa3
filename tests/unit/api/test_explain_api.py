"""`:explain` over HTTP against real Keras models: integrated gradients' completeness on an MLP,
an image model and a tabular model taking raw rows; a linear model's exact attributions; the
4xx answers for bad requests."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import session_scope
from app.main import create_app
from app.models import ModelVersion
from tests.factories import register_version, seed_mlp, two_input_model

COLUMNS = [
    {"name": "length", "kind": "numeric"},
    {"name": "width", "kind": "numeric"},
    {"name": "color", "kind": "categorical", "vocabulary": ["red", "green", "blue"]},
]


def linear_model() -> Any:
    import keras

    inputs = keras.Input(shape=(4,), name="features")
    dense = keras.layers.Dense(1, name="value")
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.array([[2.0], [-1.0], [0.5], [3.0]], dtype="float32"), np.array([0.7], dtype="float32")])
    return model


def image_model() -> Any:
    import keras

    keras.utils.set_random_seed(4)
    inputs = keras.Input(shape=(8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="tanh")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probabilities")(x))


def tabular_model() -> Any:
    """Rows (length, width, color code) in, color one-hot inside, as app/ml/tabular.py builds."""
    import keras

    from app.ml.data import TabularInputs
    from app.ml.tabular import encode_rows

    keras.utils.set_random_seed(5)
    tabular = TabularInputs(n_features=3, indexes={"features": [0, 1, 2]}, category_sizes={2: 3})
    rows, nodes, _ = encode_rows(tabular)
    x = keras.layers.Dense(8, activation="tanh")(nodes["features"])
    return keras.Model(rows, keras.layers.Dense(3, activation="softmax", name="probabilities")(x))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("explain-home")
    settings = Settings(home=home)
    upgrade_to_head(settings)
    register_version(settings, "linear", linear_model())
    register_version(settings, "mlp", seed_mlp(features=4, classes=3, hidden=8, seed=1))
    register_version(settings, "image", image_model())
    register_version(settings, "rows", tabular_model())
    register_version(settings, "two", two_input_model())
    with session_scope(settings.sqlalchemy_url) as session:  # as the worker registers a CSV model
        row = session.scalars(select(ModelVersion).where(ModelVersion.name == "rows")).one()
        row.signature = dict(row.signature, columns=COLUMNS, classes=["a", "b", "c"])
        session.commit()
    return home


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[TestClient]:
    settings = Settings(home=home, explain_max_points=400, explain_max_steps=200)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


def explain(client: TestClient, url: str, **body: Any) -> Any:
    response = client.post(f"/v1/models/{url}:explain", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_complete(explanation: dict[str, Any], spread: float) -> None:
    """Completeness: |sum(attributions) - (f(x) - f(baseline))| under 5% of |f(x) - f(baseline)|."""
    assert abs(explanation["convergence_delta"]) < 0.05 * abs(spread), (explanation["convergence_delta"], spread)


def test_a_linear_models_attributions_are_its_weights_times_the_distance_to_the_baseline(client: TestClient) -> None:
    x = [[1.0, 2.0, -3.0, 0.5], [0.0, -1.0, 4.0, 2.0]]
    baseline = [0.5, 0.5, 0.5, 0.5]

    body = explain(client, "linear/versions/1", instances=x, baseline=baseline)

    weights = np.array([2.0, -1.0, 0.5, 3.0])
    for row, explanation in zip(x, body["explanations"], strict=True):
        assert explanation["method"] == "integrated_gradients" and explanation["target"] == 0
        np.testing.assert_allclose(explanation["attributions"], weights * (np.array(row) - 0.5), rtol=1e-4, atol=1e-5)
        assert abs(explanation["convergence_delta"]) < 1e-4
    assert np.asarray(body["predictions"]).shape == (2, 1)


def test_integrated_gradients_are_complete_on_an_mlp_at_the_default_steps(client: TestClient) -> None:
    x = np.random.default_rng(0).normal(size=(6, 4)).tolist()  # 300 path points: two batches of them
    zero = explain(client, "mlp", instances=[[0.0] * 4])["predictions"][0]

    body = explain(client, "mlp", instances=x)

    for prediction, explanation in zip(body["predictions"], body["explanations"], strict=True):
        target = explanation["target"]
        assert target == int(np.argmax(prediction))  # the default: the predicted class
        assert len(explanation["attributions"]) == 4
        assert_complete(explanation, prediction[target] - zero[target])


def test_an_image_models_attributions_have_the_images_shape(client: TestClient) -> None:
    images = np.random.default_rng(1).uniform(size=(2, 8, 8, 1)).tolist()
    zero = explain(client, "image", instances=[np.zeros((8, 8, 1)).tolist()], target=1)["predictions"][0]

    body = explain(client, "image", instances=images, target=1)

    for prediction, explanation in zip(body["predictions"], body["explanations"], strict=True):
        assert np.asarray(explanation["attributions"]).shape == (8, 8, 1)
        assert_complete(explanation, prediction[1] - zero[1])
    saliency = explain(client, "image", instances=images[:1], method="saliency")["explanations"][0]
    assert np.asarray(saliency["attributions"]).shape == (8, 8, 1) and saliency["convergence_delta"] is None


def test_raw_rows_are_explained_per_column_categories_included(client: TestClient) -> None:
    rows = [{"length": 1.5, "width": -0.5, "color": "blue"}, {"length": 0.2, "width": 2.0, "color": "green"}]

    body = explain(client, "rows", instances=rows, target=2)

    for explanation in body["explanations"]:
        attributions = explanation["attributions"]
        assert set(attributions) == {"length", "width", "color"}
        assert attributions["color"] != 0.0  # the category's one-hot carries its share
        # The default baseline (zeros, no category) is no row predict takes: f(x) - f(baseline)
        # is what the attributions sum to, less the reported error.
        assert_complete(explanation, sum(attributions.values()) - explanation["convergence_delta"])
    by_list = explain(client, "rows", instances=[[1.5, -0.5, "blue"]], target=2)["explanations"][0]
    np.testing.assert_allclose(
        by_list["attributions"], list(body["explanations"][0]["attributions"].values()), rtol=1e-5
    )
    with_baseline = explain(
        client, "rows", instances=rows[:1], target=2, baseline={"length": 1.5, "width": -0.5, "color": "red"}
    )["explanations"][0]["attributions"]
    assert with_baseline["length"] == pytest.approx(0.0, abs=1e-6)  # same value as the baseline: no credit
    assert with_baseline["color"] != 0.0


@pytest.mark.parametrize(
    ("url", "body", "status", "names"),
    [
        ("mlp", {"instances": [[0, 0, 0, 0]], "method": "shap"}, 422, "method"),
        ("mlp", {"instances": []}, 422, "instances"),
        ("mlp", {"instances": [[0, 0, 0, 0]], "steps": 0}, 422, "steps"),
        ("mlp", {"instances": [[0, 0, 0, 0]], "steps": 201}, 422, "steps"),
        ("mlp", {"instances": [[0, 0, 0, 0]] * 5, "steps": 100}, 413, "EXPLAIN_MAX_POINTS"),
        ("mlp", {"instances": [[0, 0, 0, 0]], "target": 3}, 422, "target"),
        ("mlp", {"instances": [[0, 0, 0, 0]], "target": -1}, 422, "target"),
        ("mlp", {"instances": [[0, 0, 0]]}, 400, "instances"),
        ("mlp", {"instances": [[0, 0, "x", 0]]}, 400, "instances"),
        ("mlp", {"instances": [[0, 0, 0, 0]], "baseline": [1, 2]}, 422, "baseline"),
        ("mlp", {"instances": [[0, 0, 0, 0]], "baseline": "zeros"}, 400, "baseline"),
        ("mlp", {"instances": [[0, 0, 0, 0]], "tagret": 1}, 422, "tagret"),
        ("rows", {"instances": [{"length": 1, "width": 2, "color": "pink"}]}, 400, "color"),
        ("rows", {"instances": [{"length": 1, "color": "red"}]}, 400, "width"),
        ("two", {"instances": [[0, 0, 0]]}, 422, "one input"),
        ("nothing", {"instances": [[0, 0, 0, 0]]}, 404, "nothing"),
        ("mlp/versions/9", {"instances": [[0, 0, 0, 0]]}, 404, "version 9"),
        ("mlp/labels/production", {"instances": [[0, 0, 0, 0]]}, 404, "production"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(
    client: TestClient, url: str, body: dict[str, Any], status: int, names: str
) -> None:
    response = client.post(f"/v1/models/{url}:explain", json=body)

    assert response.status_code == status, response.text
    assert names in response.text


@pytest.mark.parametrize("field", ["instances", "baseline"])
def test_non_finite_numbers_are_a_400_not_a_500(client: TestClient, field: str) -> None:
    body = (
        '{"instances": [[NaN, 0, 0, 0]]}'
        if field == "instances"
        else '{"instances": [[0, 0, 0, 0]], "baseline": Infinity}'
    )

    response = client.post("/v1/models/mlp:explain", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400 and field in response.json()["error"], response.text


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_an_explain_url_are_a_405(client: TestClient, method: str) -> None:
    response = client.request(method, "/v1/models/mlp/versions/1:explain")

    assert response.status_code == 405 and response.headers["allow"] == "POST"


def test_a_versions_importance_is_a_409_when_none_was_computed(client: TestClient) -> None:
    response = client.get("/v1/models/mlp/versions/1/importance")

    assert response.status_code == 409 and "no importance" in response.json()["error"]
    assert client.get("/v1/models/mlp/versions/7/importance").status_code == 404
    assert client.get("/v1/models/mlp/versions/1/metadata").json()["metadata"]["importance"] is None
