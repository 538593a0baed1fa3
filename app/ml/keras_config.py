"""Translate Keras's own model JSON into a trainyard graph spec, refusing anything unsafe.

Accepts what `model.get_config()` and `json.loads(model.to_json())` produce for Sequential and
functional models, nested models included (a base model inside a transfer-learning model
becomes a nested graph). The JSON is never handed to Keras deserialization:

1. one linear walk over the whole tree checks it is plain JSON of bounded depth, that every
   object comes from one of Keras's own modules and names a class the catalog allows (`Lambda`,
   `__lambda__`, registered custom objects are refused), and counts the layers against the cap
   (TRAINYARD_MAX_LAYERS) before anything else is done;
2. the structure is parsed through typed models (app/ml/keras_raw.py), so a part of the wrong
   JSON type is an error naming its path;
3. layers become catalog layer specs and calls become graph nodes, ordered in linear time;
4. the graph is validated like any hand-written one, and the graph (not the JSON) is what gets
   built and stored.
"""

import json
import math
import re
import zlib
from collections import deque
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.ml.keras_raw import RawLayer, RawModel, RawModelBody, RawNode, RawObject, RawTensor, references
from app.ml.layers.keras_internal import OPERATIONS

ALLOWED_MODULES = frozenset(
    {
        "keras", "keras.layers", "keras.initializers", "keras.regularizers", "keras.constraints",
        "keras.optimizers", "keras.optimizers.schedules", "keras.losses", "keras.metrics",
        "keras.models", "keras.src.models.functional", "keras.src.models.sequential",
    }
)  # fmt: skip
# Keras-internal modules: only the classes named here, each typed in the layer catalog.
INTERNAL_CLASSES: dict[str, frozenset[str]] = {
    "keras.src.ops.numpy": frozenset(k for k, (module, _) in OPERATIONS.items() if module == "numpy"),
    "keras.src.ops.nn": frozenset(k for k, (module, _) in OPERATIONS.items() if module == "nn"),
    "keras.src.applications.convnext": frozenset({"LayerScale"}),
    "keras.src.applications.inception_resnet_v2": frozenset({"CustomScaleLayer"}),
}
OPERATION_MODULES = frozenset({"keras.src.ops.numpy", "keras.src.ops.nn"})
MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})
# Keys Keras writes that trainyard does not model; dropped only while they hold these values.
DROPPED_WHEN = {
    "quantization_config": None, "return_state": False, "stateful": False,
    "zero_output_for_mask": False, "use_cudnn": "auto", "lora_rank": None, "lora_alpha": None,
    "sliding_window": None, "flash_attention": None, "use_gate": False, "antialias": False,
    "synchronized": False, "rms_scaling": False, "input_axes": None, "output_axes": None,
    "sparse": False, "ragged": False, "optional": False, "autocast": True, "weights": None,
    "backward_layer": None, "input_dtype": None, "renorm": False, "renorm_clipping": None,
    "renorm_momentum": 0.99,
}  # fmt: skip
# Keys of a graph layer spec that the translator writes itself: never taken from a layer's config.
GRAPH_KEYS = frozenset({"type", "inputs", "graph", "op", "args"})
NEVER = frozenset({"Lambda", "TFSMLayer", "StringLookup", "IntegerLookup", "TextVectorization"})
M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 64  # JSON nesting; Keras's own configs stay under 20 even with nested models
MAX_MODEL_NESTING = 8  # models inside models
VALID_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class KerasConfigError(ValueError):
    """The config cannot be accepted; the message names the place."""


def translate(config: dict[str, Any], max_layers: int) -> Any:
    """Return the FunctionalModel equivalent to `config`, or raise KerasConfigError."""
    from app.ml.spec import FunctionalModel  # the spec module imports this one

    if not isinstance(config, dict):
        raise KerasConfigError("keras_config must be an object")
    layer_count, has_tuples = _walk(config)
    if layer_count > max_layers:
        raise KerasConfigError(
            f"keras_config: the model has {layer_count:,} layers (nested models included), over the "
            f"limit of {max_layers:,} (TRAINYARD_MAX_LAYERS)"
        )
    if has_tuples:  # get_config() called in Python: its tuples read as the lists to_json() writes
        config = json.loads(json.dumps(config))
    if "class_name" in config:  # to_json() form
        raw = _parse(RawModel, config, "keras_config")
        if raw.class_name not in MODEL_CLASSES:
            raise KerasConfigError(f"keras_config: {raw.class_name!r} is not a Sequential or functional model")
        body, sequential, path = raw.config, raw.class_name == "Sequential", "keras_config.config"
    else:  # get_config() form
        body = _parse(RawModelBody, config, "keras_config")
        sequential, path = body.input_layers is None, "keras_config"
    graph = _Scope(path, depth=0).model(body, sequential)
    try:
        return FunctionalModel.model_validate(graph)
    except ValidationError as exc:
        raise KerasConfigError(_describe(exc, graph)) from None


# --- 1. one walk: plain JSON, depth, safety, layer count -----------------------------------


def _walk(root: dict[str, Any]) -> tuple[int, bool]:
    """Check every value is plain JSON and every object one of Keras's own; return how many
    layers the model has, and whether it holds tuples (get_config() in Python does).

    Iterative (no recursion), one visit per value: linear in the size of the JSON. Each value
    carries a link to its parent, so a path is spelled out only for an error."""
    layers, tuples = 0, False
    stack: list[tuple[Any, Any, int]] = [(root, None, 1)]
    while stack:
        node, link, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise KerasConfigError(f"{_path(link)}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key in node:
                if not isinstance(key, str) or (key.startswith("__") and key != "__keras_tensor__"):
                    where = _path(link)
                    raise KerasConfigError(f"{where}: key {key!r} is not allowed (serialized code is never loaded)")
            if "class_name" in node:
                _check_class(node, link)
            if isinstance(node.get("layers"), list):
                layers += len(node["layers"])
            stack.extend((value, (link, key), depth + 1) for key, value in node.items())
        elif isinstance(node, list | tuple):
            tuples = tuples or isinstance(node, tuple)
            stack.extend((item, (link, index), depth + 1) for index, item in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            raise KerasConfigError(f"keras_config must be plain JSON: {_path(link)} is {node} (not a finite number)")
        elif node is not None and not isinstance(node, str | int | float):
            raise KerasConfigError(f"keras_config must be plain JSON: {_path(link)} is a {type(node).__name__}")
    return layers, tuples


def _path(link: Any) -> str:
    """`keras_config.config.layers[3]` from a chain of (parent link, key) pairs."""
    parts = []
    while link is not None:
        link, key = link
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "keras_config" + "".join(reversed(parts))


def _check_class(node: dict[str, Any], link: Any) -> None:
    class_name = node["class_name"]
    if class_name == "__keras_tensor__":
        return
    module = node.get("module", "keras")
    refusal = None
    if not isinstance(class_name, str) or class_name.startswith("__"):
        refusal = "serialized functions are never loaded"
    elif class_name in NEVER:
        refusal = f"{class_name} is not allowed: it runs code or reads files"
    elif isinstance(module, str) and module in INTERNAL_CLASSES:
        if class_name not in INTERNAL_CLASSES[module]:
            refusal = f"from {module} only these are allowed: {', '.join(sorted(INTERNAL_CLASSES[module]))}"
    elif not isinstance(module, str) or module not in ALLOWED_MODULES:
        refusal = f"objects from module {module!r} are not allowed"
    if refusal is None and node.get("registered_name") not in (None, class_name):
        refusal = "custom (registered) objects are not allowed"
    if refusal is not None:
        where = _path(link) + (f" ({class_name})" if isinstance(class_name, str) else "")
        raise KerasConfigError(f"{where}: {refusal}")


# --- 2. typed structure ----------------------------------------------------------------------


def _parse(model: type[M], value: Any, path: str) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"] if _plain(p))
        raise KerasConfigError(f"{where}: {error['msg']}") from None


def _plain(part: Any) -> bool:
    """Location parts that are fields or indexes, not union member names pydantic inserts."""
    return isinstance(part, int) or (isinstance(part, str) and not part.startswith(("list[", "tuple[", "Raw")))


# --- 3. layers and calls into a graph -------------------------------------------------------


class _Scope:
    """One model's namespace: Keras names mapped to valid, unique graph node names."""

    def __init__(self, path: str, depth: int) -> None:
        self.path = path
        self.depth = depth
        self.names: dict[str, str] = {}
        self.used: set[str] = set()

    def name(self, keras_name: str) -> str:
        """A node name the spec accepts for this Keras name (the same one every time)."""
        if keras_name not in self.names:
            name = keras_name if VALID_NAME.match(keras_name) else self._valid(keras_name)
            while name in self.used:
                name = self._valid(name + "_")
            self.names[keras_name] = name
            self.used.add(name)
        return self.names[keras_name]

    @staticmethod
    def _valid(keras_name: str) -> str:
        cleaned = re.sub(r"[^A-Za-z0-9_]", "_", keras_name)
        cleaned = cleaned if cleaned[:1].isalpha() else f"n_{cleaned}"
        if len(cleaned) <= 64 and VALID_NAME.match(cleaned):
            return cleaned
        return f"{cleaned[:55]}_{zlib.crc32(keras_name.encode()):08x}"

    def node(self, layer: str, node_index: int) -> str:
        base = self.name(layer)
        return base if node_index == 0 else self.name(f"{layer}__call{node_index}")

    def model(self, body: RawModelBody, sequential: bool) -> dict[str, Any]:
        """The graph of one model: `{"inputs", "layers", "outputs"}`."""
        if self.depth > MAX_MODEL_NESTING:
            raise KerasConfigError(f"{self.path}: models nested deeper than {MAX_MODEL_NESTING} levels")
        return self._sequential(body) if sequential else self._functional(body)

    def _sequential(self, body: RawModelBody) -> dict[str, Any]:
        shape = _shape(body.build_input_shape, self.path) if body.build_input_shape else None
        input_name = "features" if self.depth == 0 else "input"
        layers: list[dict[str, Any]] = []
        for index, raw in enumerate(body.layers):
            where = f"{self.path}.layers[{index}]"
            if raw.class_name == "InputLayer":
                shape = _input_shape(raw, where)
                continue
            layer = self._layer(raw, raw.config.get("name") or raw.name, where, reads_input=not layers)
            layer["inputs"] = [layers[-1]["name"] if layers else input_name]
            layers.append(layer)
        if not layers:
            raise KerasConfigError(f"{self.path}: the model has no layers besides its input")
        graph_input: dict[str, Any] = {"name": input_name}
        if shape is not None:
            graph_input["shape"] = shape
        return {"inputs": [graph_input], "layers": layers, "outputs": [layers[-1]["name"]]}

    def _functional(self, body: RawModelBody) -> dict[str, Any]:
        inputs: dict[str, dict[str, Any]] = {}
        calls: list[dict[str, Any]] = []
        for index, raw in enumerate(body.layers):
            where = f"{self.path}.layers[{index}]"
            keras_name = raw.name or raw.config.get("name")
            if raw.class_name == "InputLayer":
                if not isinstance(keras_name, str):
                    raise KerasConfigError(f"{where}: the input has no name")
                inputs[keras_name] = {"name": self.name(keras_name), "shape": _input_shape(raw, where)}
                continue
            first_args = raw.inbound_nodes[0].args if raw.inbound_nodes else []
            reads_input = any(isinstance(a, RawTensor) and a.config.keras_history[0] in inputs for a in first_args)
            layer = self._layer(raw, keras_name, where, reads_input)
            if not raw.inbound_nodes:
                raise KerasConfigError(f"{where}: a layer of a functional model needs 'inbound_nodes'")
            for node_index, node in enumerate(raw.inbound_nodes):
                node_where = f"{where}.inbound_nodes[{node_index}]"
                sources, template = self._sources(node, node_where)
                if layer["type"] == "Operation":
                    layer["args"] = template
                if node_index == 0:
                    calls.append({**layer, "inputs": sources})
                else:
                    name = self.node(str(keras_name), node_index)
                    calls.append({"type": "Call", "layer": layer["name"], "name": name, "inputs": sources})
        order = references(body.input_layers)
        ordered_inputs = [inputs[ref[0]] for ref in order if ref[0] in inputs] or list(inputs.values())
        if not ordered_inputs:
            raise KerasConfigError(f"{self.path}: a functional model needs an InputLayer")
        outputs = [self._history(ref, f"{self.path}.output_layers") for ref in references(body.output_layers)]
        if not outputs:
            raise KerasConfigError(f"{self.path}.output_layers: a functional model needs its outputs")
        available = {i["name"] for i in ordered_inputs}
        return {"inputs": ordered_inputs, "layers": _topological(calls, available, self.path), "outputs": outputs}

    def _sources(self, node: RawNode, where: str) -> tuple[list[str], list[Any]]:
        """The nodes a call reads, and its positional arguments as an Operation template."""
        sources: list[str] = []
        template: list[Any] = []
        for arg in node.args:
            if isinstance(arg, RawTensor):
                sources.append(self._history(arg.config.keras_history, where))
                template.append(None)
            elif isinstance(arg, list):
                sources.extend(self._history(t.config.keras_history, where) for t in arg)
                template.append([None] * len(arg))
            else:
                template.append(arg)
        for tensor in (node.kwargs.value, node.kwargs.key):
            if tensor is not None:
                sources.append(self._history(tensor.config.keras_history, where))
        if not sources:
            raise KerasConfigError(f"{where}: the call has no input tensors")
        return sources, template

    def _history(self, history: tuple[str, int, int], where: str) -> str:
        layer, node_index, tensor_index = history
        if tensor_index != 0:
            raise KerasConfigError(f"{where}: layers with several outputs are not supported")
        return self.node(layer, node_index)

    def _layer(self, raw: RawLayer, keras_name: Any, where: str, reads_input: bool = False) -> dict[str, Any]:
        if not isinstance(keras_name, str):
            raise KerasConfigError(f"{where}: the layer has no name")
        name = self.name(keras_name)
        if raw.class_name in MODEL_CLASSES:
            return self._nested(raw, name, where)
        for key in GRAPH_KEYS & set(raw.config):
            raise KerasConfigError(f"{where}.config.{key}: not an argument of a Keras layer")
        if raw.module in OPERATION_MODULES:
            arguments = {k: _value(v, f"{where}.config.{k}") for k, v in raw.config.items() if k != "name"}
            return {"type": "Operation", "op": raw.class_name, "name": name, **arguments}
        spec: dict[str, Any] = {"type": raw.class_name, "name": name}
        for key, value in raw.config.items():
            if key == "name" or (key in DROPPED_WHEN and value == DROPPED_WHEN[key]):
                continue
            if key == "backward_layer":  # Bidirectional derives it from the forward layer again
                continue
            if key == "dtype":
                _check_dtype(value, f"{where}.config.dtype")
                continue
            spec[key] = _value(value, f"{where}.config.{key}")
        if raw.class_name == "Normalization" and spec.get("mean") is None and not (reads_input and self.depth == 0):
            # Keras computes an un-adapted Normalization as mean 0, variance 1 (EfficientNet's,
            # with weights=None); said explicitly, since trainyard adapts only those on inputs.
            spec["mean"], spec["variance"] = 0.0, 1.0
        return spec

    def _nested(self, raw: RawLayer, name: str, where: str) -> dict[str, Any]:
        body = _parse(RawModelBody, raw.config, f"{where}.config")
        sequential = raw.class_name == "Sequential" or body.input_layers is None
        graph = _Scope(f"{where}.config", self.depth + 1).model(body, sequential)
        return {"type": "Model", "name": name, "trainable": body.trainable, "graph": graph}


def _topological(calls: list[dict[str, Any]], available: set[str], path: str) -> list[dict[str, Any]]:
    """Order calls so each comes after the nodes it reads (a shared layer's later calls may
    read layers listed after it). Kahn's algorithm: linear in calls and edges, and the order of
    the config is kept wherever it already works."""
    waiting_on: dict[int, int] = {}
    readers: dict[str, list[int]] = {}
    ready: deque[int] = deque()
    for index, call in enumerate(calls):
        missing = {name for name in call["inputs"] if name not in available}
        waiting_on[index] = len(missing)
        for name in missing:
            readers.setdefault(name, []).append(index)
        if not missing:
            ready.append(index)
    ordered: list[dict[str, Any]] = []
    while ready:
        call = calls[ready.popleft()]
        ordered.append(call)
        for reader in readers.pop(call["name"], []):
            waiting_on[reader] -= 1
            if waiting_on[reader] == 0:
                ready.append(reader)
    if len(ordered) < len(calls):
        made = {c["name"] for c in calls}
        unknown = sorted(name for name in readers if name not in made)
        what = f"unknown nodes {unknown[:10]}" if unknown else f"a cycle through {sorted(readers)[:10]}"
        raise KerasConfigError(f"{path}: the graph refers to {what}")
    return ordered


# --- one value ------------------------------------------------------------------------------


def _input_shape(raw: RawLayer, where: str) -> list[int]:
    return _shape(raw.config.get("batch_shape") or raw.config.get("batch_input_shape"), f"{where}.config.batch_shape")


def _shape(shape: Any, where: str) -> list[int]:
    if not isinstance(shape, list) or len(shape) < 2 or any(type(d) is not int for d in shape[1:]):
        raise KerasConfigError(f"{where}: the input needs a fixed per-sample shape, got {shape}")
    return list(shape[1:])


def _value(value: Any, where: str) -> Any:
    """A config value with nested Keras objects turned into `{"type": ..., **config}`."""
    if isinstance(value, dict) and "class_name" in value:
        raw = _parse(RawObject, value, where)
        if raw.module == "keras.layers":  # a wrapped layer (Bidirectional, TimeDistributed)
            inner = _Scope(where, depth=MAX_MODEL_NESTING)._layer(_parse(RawLayer, value, where), "inner", where)
            inner.pop("name", None)
            return inner
        nested = {k: _value(v, f"{where}.{k}") for k, v in raw.config.items()}
        nested = {k: v for k, v in nested.items() if not (k in DROPPED_WHEN and v == DROPPED_WHEN[k])}
        return {"type": raw.class_name, **nested}
    if isinstance(value, list):
        return [_value(v, f"{where}[{index}]") for index, v in enumerate(value)]
    return value


def _check_dtype(value: Any, where: str) -> None:
    # The shape is checked before it is read: any JSON may stand here ({"config": null} too).
    if isinstance(value, dict) and not isinstance(value.get("config", {}), dict):
        raise KerasConfigError(f"{where}: a dtype policy's 'config' must be an object")
    name = value.get("config", {}).get("name") if isinstance(value, dict) else value
    if name not in (None, "float32"):
        raise KerasConfigError(f"{where}: only float32 layers are supported, got {name!r}")


def _describe(exc: ValidationError, graph: dict[str, Any]) -> str:
    from app.ml.spec import UNION_TAGS

    messages = []
    for error in exc.errors()[:5]:
        loc, where, level = list(error["loc"]), "keras_config", graph
        while len(loc) >= 2 and loc[0] == "layers" and isinstance(loc[1], int) and loc[1] < len(level["layers"]):
            layer = level["layers"][loc[1]]
            where = f"keras_config layer {layer.get('name')!r} ({layer.get('type')})"
            loc = [p for p in loc[2:] if p not in UNION_TAGS]
            if loc[:1] != ["graph"] or not isinstance(layer.get("graph"), dict):
                break
            level, loc = layer["graph"], loc[1:]
        field = ".".join(str(p) for p in loc if p not in UNION_TAGS and not isinstance(p, int))
        messages.append(f"{where}{': ' + field if field else ''}: {error['msg']}")
    return "; ".join(messages)
