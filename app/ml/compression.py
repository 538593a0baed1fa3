"""Compress a trained Keras model and its ONNX serving artifact: int8, float16, or pruning.

- int8: Keras's own `model.quantize("int8")` for the layers it supports (Dense, EinsumDense,
  Embedding), and ONNX Runtime's `quantize_dynamic` (int8 weights) for the serving artifact, so
  conv nets and the serving path shrink too.
- float16: the Keras layers rebuilt under a float16 dtype policy, and the ONNX artifact
  converted by ONNX Runtime's float16 converter with float32 inputs and outputs kept (the
  version's signature does not change).
- prune: magnitude pruning of every kernel to the asked sparsity, then a short fine-tune with
  the masks re-applied after each batch (a Keras callback: backend-agnostic), so the saved model
  holds the zeros; the ONNX export of the pruned model is checked for them too.

Keras is imported at module import: only the worker's child process imports this module.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

log = logging.getLogger(__name__)

METHODS = ("int8", "float16", "prune")
# Layers whose `kernel` magnitude pruning zeroes (biases, norms and embeddings are left whole).
PRUNABLE_KERNEL = "kernel"


@dataclass
class CompressedKeras:
    """The compressed Keras model and what was done to which layers."""

    model: keras.Model
    notes: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- int8 and float16


def quantize_keras_int8(model: keras.Model) -> CompressedKeras:
    """`model.quantize("int8")` in place where Keras supports the layers; the names of the
    layers it quantized (none: the Keras model stays float32, the ONNX artifact still shrinks)."""
    before = {layer.name: str(layer.dtype_policy.name) for layer in _leaf_layers(model)}
    try:
        model.quantize("int8")
    except Exception as exc:  # Keras refuses a model with no supported layer: say so, go on
        log.info("Keras int8 quantization not applied: %s", exc)
        return CompressedKeras(model, {"keras": f"float32 kept: {type(exc).__name__}: {exc}"})
    quantized = [layer.name for layer in _leaf_layers(model) if str(layer.dtype_policy.name) != before.get(layer.name)]
    return CompressedKeras(model, {"keras_quantized_layers": quantized})


def cast_keras_float16(model: keras.Model) -> CompressedKeras:
    """The same model with every layer but the output ones under the float16 policy.

    Keras has no float16 `quantize` mode; a clone under the policy keeps the architecture and
    stores half-size weights. Falls back to the float32 model (noted) when the clone fails."""

    # The layers that make the outputs stay float32: the signature (and predict's JSON) says so.
    last = {t._keras_history.operation.name for t in model.outputs}

    def half(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if "dtype" in config and not isinstance(layer, keras.layers.InputLayer) and layer.name not in last:
            config["dtype"] = "float16"
        return layer.__class__.from_config(config)

    try:
        clone = keras.models.clone_model(model, clone_function=half)
        clone.set_weights(model.get_weights())
    except Exception as exc:
        log.info("Keras float16 cast not applied: %s", exc)
        return CompressedKeras(model, {"keras": f"float32 kept: {type(exc).__name__}: {exc}"})
    return CompressedKeras(clone, {"keras_dtype": "float16"})


CALIBRATION_BATCH = 32


def quantize_onnx(method: str, source: Path, target: Path, calibration: dict[str, np.ndarray] | None = None) -> str:
    """Write `target`: the ONNX file `source` with int8 or float16 weights; returns how.

    int8, a graph with convolutions and `calibration` rows (of each input, from the training
    split): static QDQ quantization, per-channel int8 weights and uint8 activations whose
    ranges the rows calibrate; ONNX Runtime then runs QLinearConv, and the conv net gets faster
    as well as smaller. Otherwise dynamic quantization (int8 weights, activations quantized per
    call): smallest and fast for matrix products, but it runs convolutions as ConvInteger, ~10x
    slower than float on CPU (bench/RESULTS.md "Compression"). float16: weights halved, inputs and outputs kept float32
    so the version's signature is the source's."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if method == "int8":
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

        if calibration and _has_convolutions(source):
            quantize_static(
                str(source),
                str(target),
                _Calibration(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
            )
            rows = min(len(a) for a in calibration.values())
            return f"static QDQ int8, per-channel weights, {rows} calibration rows"
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        return "dynamic int8 (weights int8; activations quantized per call)"
    if method == "float16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        converted = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
        onnx.save(converted, str(target))
        return "float16 weights, float32 inputs and outputs"
    raise ValueError(f"no ONNX quantization for method {method!r}")


def _has_convolutions(path: Path) -> bool:
    import onnx

    return any(node.op_type == "Conv" for node in onnx.load(str(path)).graph.node)


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over in-memory rows, in batches."""

    def __init__(self, inputs: dict[str, np.ndarray]) -> None:
        rows = min(len(a) for a in inputs.values())
        self._batches = iter(
            [
                {name: a[i : i + CALIBRATION_BATCH] for name, a in inputs.items()}
                for i in range(0, rows, CALIBRATION_BATCH)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


# ---------------------------------------------------------------- pruning


def magnitude_masks(model: keras.Model, sparsity: float) -> dict[str, np.ndarray]:
    """Per prunable kernel (by variable path), a 0/1 mask keeping its largest-magnitude
    `1 - sparsity` share of weights (per layer: each layer keeps the same share)."""
    masks: dict[str, np.ndarray] = {}
    for variable in _prunable(model):
        values = np.abs(keras.ops.convert_to_numpy(variable.value))
        cut = round(values.size * sparsity)
        if cut <= 0:
            masks[variable.path] = np.ones_like(values)
            continue
        threshold = np.partition(values.ravel(), cut - 1)[cut - 1]
        mask = (values > threshold).astype(values.dtype)
        # Ties at the threshold could keep too many: drop them in order until the count is exact.
        extra = int(mask.sum()) - (values.size - cut)
        if extra > 0:
            tied = np.flatnonzero((values.ravel() == threshold) & (mask.ravel() == 1))[:extra]
            mask.ravel()[tied] = 0
        masks[variable.path] = mask
    return masks


def apply_masks(model: keras.Model, masks: dict[str, np.ndarray]) -> None:
    for variable in _prunable(model):
        mask = masks.get(variable.path)
        if mask is not None:
            variable.assign(keras.ops.multiply(variable.value, keras.ops.cast(mask, variable.dtype)))


class KeepPruned(keras.callbacks.Callback):
    """Re-applies the masks after every batch: the optimizer's update regrows pruned weights,
    and masking the variables (rather than the gradients) works the same on every backend."""

    def __init__(self, masks: dict[str, np.ndarray]) -> None:
        super().__init__()
        self._masks = masks

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        apply_masks(self.model, self._masks)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        apply_masks(self.model, self._masks)


def kernel_sparsity(model: keras.Model) -> float:
    """The share of exact zeros across the prunable kernels."""
    total = zeros = 0
    for variable in _prunable(model):
        values = keras.ops.convert_to_numpy(variable.value)
        total += values.size
        zeros += int(np.count_nonzero(values == 0))
    return zeros / total if total else 0.0


def onnx_weight_sparsity(path: Path, min_size: int = 16) -> float:
    """The share of exact zeros across the float initializers of at least `min_size` values (the
    kernels; small biases are left out), read back from the saved ONNX file."""
    import onnx
    from onnx import numpy_helper

    total = zeros = 0
    for initializer in onnx.load(str(path)).graph.initializer:
        values = numpy_helper.to_array(initializer)
        if values.dtype.kind != "f" or values.size < min_size or values.ndim < 2:
            continue
        total += values.size
        zeros += int(np.count_nonzero(values == 0))
    return zeros / total if total else 0.0


def _prunable(model: keras.Model) -> list[Any]:
    found = []
    for layer in _leaf_layers(model):
        kernel = getattr(layer, PRUNABLE_KERNEL, None)
        if kernel is not None and getattr(kernel, "trainable", False) and len(kernel.shape) >= 2:
            found.append(kernel)
    return found


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model._flatten_layers(include_self=False) if not layer._layers]


def load_source(path: Path, compile: bool) -> keras.Model:
    """The version to compress, from its .keras file (safe_mode: no code from the file runs)."""
    return keras.saving.load_model(path, safe_mode=True, compile=compile)


def compile_for_fine_tune(model: keras.Model, loss: str) -> None:
    """A pruned model's fine-tune needs an optimizer: Adam at 1e-3 when it was saved without one."""
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
