"""Export a trained model for inference: ONNX for ONNX Runtime, else the Keras model itself.

The worker calls `export_for_serving` right after saving `model.keras`. It tries Keras's own
`model.export(format="onnx")` (on the TensorFlow backend that needs the `tf2onnx` and `onnx`
packages), runs both the Keras model and the ONNX file on the same sample inputs, and keeps the
ONNX file only when they agree. Otherwise the version is served by a compiled Keras call, and the
reason is recorded. Serving an ONNX file needs only `onnxruntime`: no TensorFlow in the process.
"""

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

log = logging.getLogger(__name__)

RUNTIME_ONNX = "onnx"
RUNTIME_KERAS = "keras"
SAMPLE_ROWS = 8
# float32 through two different kernels: relative error ~1e-6 per op is normal; 1e-3 is a bug.
ATOL = 1e-4
RTOL = 1e-3


@dataclass
class ServingExport:
    """What serves a version, and the evidence that it computes what the trained model does."""

    runtime: str
    signature: dict[str, Any]
    path: Path | None = None
    check: dict[str, Any] = field(default_factory=dict)


def serving_signature(model: keras.Model) -> dict[str, Any]:
    """Input and output names, per-request shapes (-1 for any size) and dtypes, in call order."""

    def describe(tensors: list[Any], names: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "shape": [d if d is not None else -1 for d in t.shape],
                "dtype": str(t.dtype),
            }
            for t, name in zip(tensors, names, strict=True)
        ]

    inputs = list(model.inputs)
    outputs = list(model.outputs)
    return {
        "inputs": describe(inputs, [t.name for t in inputs]),
        "outputs": describe(outputs, _output_names(model, outputs)),
    }


def _output_names(model: keras.Model, outputs: list[Any]) -> list[str]:
    names = getattr(model, "output_names", None)
    if not names or len(names) != len(outputs):
        # A Sequential model's outputs are named by the layers that make them (`dense_2`).
        names = [t._keras_history.operation.name for t in outputs]
    if len(set(names)) != len(names):
        names = [f"{name}_{i}" for i, name in enumerate(names)]
    return [str(name) for name in names]


def sample_inputs(signature: dict[str, Any], rows: int = SAMPLE_ROWS, seed: int = 0) -> list[Any]:
    """Deterministic inputs of every declared input: normal floats, small non-negative ints."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in signature["inputs"]:
        shape = (rows, *[d if d >= 0 else 1 for d in spec["shape"][1:]])
        dtype = np.dtype(spec["dtype"])
        if dtype.kind == "f":
            arrays.append(rng.normal(size=shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, size=shape).astype(dtype))
        else:
            arrays.append(rng.integers(0, 10, size=shape).astype(dtype))
    return arrays


def call_keras(model: keras.Model, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The model's forward pass (inference mode) on one array per input, outputs in order."""
    structure = getattr(model, "_inputs_struct", None)
    if len(arrays) == 1:
        inputs: Any = arrays[0]
    elif isinstance(structure, dict):
        inputs = {t.name: a for t, a in zip(model.inputs, arrays, strict=True)}
    else:
        inputs = list(arrays)
    outputs = model(inputs, training=False)
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(outputs)]


def export_for_serving(model: keras.Model, onnx_path: Path) -> ServingExport:
    """Write `onnx_path` if the model exports to ONNX and the export agrees with Keras.

    Never raises for a model that cannot be exported: the result then names the Keras runtime
    and `check["reason"]` says why. The ONNX file appears atomically (written, then renamed).
    """
    signature = serving_signature(model)
    samples = sample_inputs(signature)
    expected = call_keras(model, samples)  # also marks the model as called, which export needs
    started = time.perf_counter()
    tmp = onnx_path.with_name(f".{uuid.uuid4().hex}.tmp.onnx")
    try:
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        model.export(str(tmp), format="onnx", verbose=False)
        export_s = time.perf_counter() - started
        got = _run_onnx(tmp, signature, samples)
        max_diff = _max_abs_diff(expected, got)
        if max_diff is None or not _agree(expected, got):
            reason = (
                f"ONNX output differs from Keras by up to {max_diff} on {SAMPLE_ROWS} sample rows"
                if max_diff is not None
                else "ONNX outputs do not match the Keras outputs in number or shape"
            )
            return _keras_fallback(signature, reason)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, onnx_path)
    except Exception as exc:  # any failure to export means: serve with Keras instead
        log.warning("ONNX export failed, serving with Keras: %s", exc)
        return _keras_fallback(signature, f"ONNX export failed: {type(exc).__name__}: {exc}")
    finally:
        tmp.unlink(missing_ok=True)
    return ServingExport(
        runtime=RUNTIME_ONNX,
        signature=signature,
        path=onnx_path,
        check={
            "sample_rows": SAMPLE_ROWS,
            "max_abs_diff": max_diff,
            "export_s": round(export_s, 3),
        },
    )


def _keras_fallback(signature: dict[str, Any], reason: str) -> ServingExport:
    return ServingExport(runtime=RUNTIME_KERAS, signature=signature, check={"reason": reason})


def _run_onnx(path: Path, signature: dict[str, Any], arrays: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    expected_names = [spec["name"] for spec in signature["inputs"]]
    if sorted(names) != sorted(expected_names):
        raise ValueError(f"the ONNX inputs are {names}, the model's are {expected_names}")
    feed = dict(zip(expected_names, arrays, strict=True))
    return [np.asarray(o) for o in session.run(None, feed)]


def _max_abs_diff(expected: list[np.ndarray], got: list[np.ndarray]) -> float | None:
    if [e.shape for e in expected] != [g.shape for g in got]:
        return None
    pairs = zip(expected, got, strict=True)
    diffs = [float(np.max(np.abs(e.astype("float64") - g))) for e, g in pairs]
    return max(diffs, default=0.0)


def _agree(expected: list[np.ndarray], got: list[np.ndarray]) -> bool:
    return all(
        np.allclose(e.astype("float64"), g.astype("float64"), atol=ATOL, rtol=RTOL)
        for e, g in zip(expected, got, strict=True)
    )
