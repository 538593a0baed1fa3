"""The serving export: ONNX when it agrees with Keras, the Keras runtime (with why) otherwise."""

from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from app.ml.export import RUNTIME_KERAS, RUNTIME_ONNX, export_for_serving, sample_inputs
from tests.factories import seed_mlp, two_input_model


def test_the_seed_mlp_exports_to_onnx_that_agrees_with_keras(tmp_path: Path) -> None:
    model = seed_mlp()

    result = export_for_serving(model, tmp_path / "model.onnx")

    assert result.runtime == RUNTIME_ONNX and result.path == tmp_path / "model.onnx"
    assert result.check["max_abs_diff"] < 1e-5
    assert result.signature["inputs"] == [{"name": "features", "shape": [-1, 100], "dtype": "float32"}]
    assert result.signature["outputs"][0]["shape"] == [-1, 10]
    session = onnxruntime.InferenceSession(str(result.path))
    x = sample_inputs(result.signature, rows=3, seed=5)[0]
    np.testing.assert_allclose(session.run(None, {"features": x})[0], model(x), atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left


def test_a_two_input_two_output_model_keeps_its_names(tmp_path: Path) -> None:
    result = export_for_serving(two_input_model(), tmp_path / "model.onnx")

    assert result.runtime == RUNTIME_ONNX
    assert [i["name"] for i in result.signature["inputs"]] == ["a", "b"]
    assert [i["dtype"] for i in result.signature["inputs"]] == ["float32", "int32"]
    assert [o["name"] for o in result.signature["outputs"]] == ["scores", "value"]


def test_a_model_that_cannot_be_exported_is_served_by_keras_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = seed_mlp(features=4, classes=3, hidden=8)

    def no_onnx(*args: object, **kwargs: object) -> None:
        raise ImportError("No module named 'tf2onnx'")

    monkeypatch.setattr(model, "export", no_onnx)

    result = export_for_serving(model, tmp_path / "model.onnx")

    assert result.runtime == RUNTIME_KERAS and result.path is None
    assert "tf2onnx" in result.check["reason"]
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_disagrees_with_keras_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = seed_mlp(features=4, classes=3, hidden=8)
    other = seed_mlp(features=4, classes=3, hidden=8, seed=1)  # same shapes, other weights
    monkeypatch.setattr(model, "export", other.export)
    other(np.zeros((1, 4), np.float32))

    result = export_for_serving(model, tmp_path / "model.onnx")

    assert result.runtime == RUNTIME_KERAS
    assert "differs from Keras" in result.check["reason"]
    assert not (tmp_path / "model.onnx").exists()
