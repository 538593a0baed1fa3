"""The two ways a version is run: ONNX Runtime on its exported file, or its Keras model.

ONNX Runtime needs no TensorFlow: a process that only serves ONNX versions never imports it.
Keras is imported only when a version without an ONNX export is loaded.
"""

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.serving.signature import ServedVersion

RUNTIME_ONNX = "onnx"
RUNTIME_KERAS = "keras"
PLATFORMS = {RUNTIME_ONNX: "onnxruntime_onnx", RUNTIME_KERAS: "keras"}


class Runtime(Protocol):
    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One batch: an array per declared input, in order; returns one array per output."""
        ...


class OnnxRuntime:
    """An ONNX Runtime session on one thread, without spinning: the models served here take
    microseconds, and idle spinning threads would take CPU from the HTTP event loop."""

    def __init__(self, path: Path, version: ServedVersion) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        names = {i.name for i in self._session.get_inputs()}
        missing = [spec.name for spec in version.inputs if spec.name not in names]
        if missing:
            raise ValueError(f"{path.name} has no input named {missing}; it has {sorted(names)}")
        self._input_names = [spec.name for spec in version.inputs]
        self._run = self._session.run

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self._run(None, dict(zip(self._input_names, inputs, strict=True)))  # type: ignore[no-any-return]


class KerasRuntime:
    """The .keras file loaded with safe_mode, run by `predict_on_batch` (the compiled predict
    step: ~0.5 ms a row here, against ~59 ms for `model.predict`, DESIGN.md)."""

    def __init__(self, path: Path, version: ServedVersion) -> None:
        import keras

        self._model: Any = keras.saving.load_model(path, safe_mode=True, compile=False)
        self._keras = keras
        self._dict_inputs = isinstance(getattr(self._model, "_inputs_struct", None), dict)
        self._names = [spec.name for spec in version.inputs]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) == 1:
            x: Any = inputs[0]
        elif self._dict_inputs:
            x = dict(zip(self._names, inputs, strict=True))
        else:
            x = list(inputs)
        outputs = self._model.predict_on_batch(x)
        return [np.asarray(o) for o in self._keras.tree.flatten(outputs)]


def open_runtime(version: ServedVersion) -> Runtime:
    """Load `version`'s artifact into the runtime its registration chose."""
    if version.runtime == RUNTIME_ONNX:
        return OnnxRuntime(version.path, version)
    if version.runtime == RUNTIME_KERAS:
        return KerasRuntime(version.path, version)
    raise ValueError(f"unknown serving runtime {version.runtime!r} for {version.name}")
