"""app.ml.compression on small real models: exact magnitude masks, zeros kept through a fit and
in the ONNX export, and the int8 path chosen per graph (static for convolutions)."""

from pathlib import Path

import keras
import numpy as np
import onnx
import pytest

from app.ml import compression, export
from app.ml.training import save_atomically


def mlp() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3)])


def test_masks_zero_exactly_the_asked_share_of_each_kernel_and_a_fit_keeps_them(tmp_path: Path) -> None:
    model = mlp()
    masks = compression.magnitude_masks(model, 0.75)
    compression.apply_masks(model, masks)
    assert [int(m.size - m.sum()) for m in masks.values()] == [192, 72]  # 75% of 8x32 and of 32x3
    model.compile(optimizer="adam", loss="mse")
    x, y = np.random.default_rng(0).normal(size=(64, 8)), np.random.default_rng(1).normal(size=(64, 3))
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[compression.KeepPruned(masks)])
    assert compression.kernel_sparsity(model) == 0.75
    exported = export.export_for_serving(model, tmp_path / "model.onnx")
    assert exported.path is not None
    assert compression.onnx_weight_sparsity(exported.path) == 0.75


def test_without_the_callback_the_optimizer_regrows_pruned_weights() -> None:
    model = mlp()
    compression.apply_masks(model, compression.magnitude_masks(model, 0.5))
    model.compile(optimizer="adam", loss="mse")
    x, y = np.random.default_rng(0).normal(size=(64, 8)), np.random.default_rng(1).normal(size=(64, 3))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert compression.kernel_sparsity(model) < 0.1


def test_int8_is_static_for_convolutions_and_dynamic_for_matrix_products(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    conv = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3), keras.layers.Flatten(), keras.layers.Dense(32)]
    )
    rows = np.random.default_rng(0).normal(size=(64, 8, 8, 1)).astype(np.float32)
    for name, model, sample in (("conv", conv, rows), ("mlp", mlp(), rows.reshape(64, -1)[:, :8])):
        source = export.export_for_serving(model, tmp_path / name / "model.onnx")
        assert source.path is not None
        calibration = {source.signature["inputs"][0]["name"]: sample}
        how = compression.quantize_onnx("int8", source.path, tmp_path / name / "int8.onnx", calibration)
        ops = {node.op_type for node in onnx.load(str(tmp_path / name / "int8.onnx")).graph.node}
        if name == "conv":
            assert how.startswith("static QDQ") and "QuantizeLinear" in ops and "ConvInteger" not in ops
            assert (tmp_path / name / "int8.onnx").stat().st_size < source.path.stat().st_size / 2.5
        else:
            assert how.startswith("dynamic") and "MatMulInteger" in ops


def test_float16_keeps_float32_inputs_and_outputs(tmp_path: Path) -> None:
    source = export.export_for_serving(mlp(), tmp_path / "model.onnx")
    assert source.path is not None
    compression.quantize_onnx("float16", source.path, tmp_path / "half.onnx")
    graph = onnx.load(str(tmp_path / "half.onnx")).graph
    assert [i.type.tensor_type.elem_type for i in [*graph.input, *graph.output]] == [onnx.TensorProto.FLOAT] * 2
    assert {i.data_type for i in graph.initializer if len(i.dims) == 2} == {onnx.TensorProto.FLOAT16}


@pytest.mark.parametrize("method", ["int8", "float16"])
def test_the_compressed_keras_model_loads_in_safe_mode_and_answers_float32(tmp_path: Path, method: str) -> None:
    model = mlp()
    done = compression.quantize_keras_int8(model) if method == "int8" else compression.cast_keras_float16(model)
    save_atomically(done.model, tmp_path / "model.keras")
    back = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    kernel = "int8" if method == "int8" else "float16"
    assert str(back.layers[0].kernel.dtype) == kernel  # the hidden layer shrank
    assert back.predict_on_batch(np.ones((2, 8), np.float32)).dtype == np.float32  # the signature holds
