"""Translate Keras's own model JSON into a trainyard graph spec, refusing anything unsafe.

Accepts what `model.get_config()` and `json.loads(model.to_json())` produce for Sequential and
functional models. The JSON is never handed to Keras deserialization: every object must come
from one of Keras's own modules and name a class in the catalog; `Lambda`, `__lambda__`,
registered (custom) objects and anything else are refused. The result is validated like any
hand-written graph, and the graph (not the JSON) is what gets built and stored.
"""

import json
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

ALLOWED_MODULES = frozenset(
    {
        "keras", "keras.layers", "keras.initializers", "keras.regularizers", "keras.constraints",
        "keras.optimizers", "keras.optimizers.schedules", "keras.losses", "keras.metrics",
        "keras.models", "keras.src.models.functional", "keras.src.models.sequential",
    }
)  # fmt: skip
MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})
DTYPE_POLICIES = frozenset({"DTypePolicy", "FloatDTypePolicy"})
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
NEVER = frozenset({"Lambda", "TFSMLayer", "StringLookup", "IntegerLookup", "TextVectorization"})


class KerasConfigError(ValueError):
    """The config cannot be accepted; the message names the place."""


def translate(config: dict[str, Any]) -> Any:
    """Return the FunctionalModel equivalent to `config`, or raise KerasConfigError."""
    from app.ml.spec import FunctionalModel  # the spec module imports this one

    try:  # plain JSON only (get_config() in Python holds tuples; anything else is refused)
        config = json.loads(json.dumps(config))
    except (TypeError, ValueError) as exc:
        raise KerasConfigError(f"keras_config must be plain JSON: {exc}") from None
    _refuse_unsafe(config, "keras_config")
    body, class_name = _model_body(config)
    raw_layers = body.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise KerasConfigError("keras_config: the model has no 'layers' list")
    graph = _sequential_graph(raw_layers) if class_name == "Sequential" else _functional_graph(body)
    try:
        return FunctionalModel.model_validate(graph)
    except ValidationError as exc:
        raise KerasConfigError(_describe(exc, graph)) from None


# --- safety ---------------------------------------------------------------------------------


def _refuse_unsafe(node: Any, path: str) -> None:
    """Walk the whole tree once: every object must be one of Keras's own, nothing callable."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _refuse_unsafe(item, f"{path}[{index}]")
        return
    if not isinstance(node, dict):
        return
    for key in node:
        if not isinstance(key, str) or (key.startswith("__") and key != "__keras_tensor__"):
            raise KerasConfigError(f"{path}: key {key!r} is not allowed (serialized code is never loaded)")
    if "class_name" in node:
        class_name = node["class_name"]
        where = f"{path} ({class_name})"
        if not isinstance(class_name, str) or (class_name.startswith("__") and class_name != "__keras_tensor__"):
            raise KerasConfigError(f"{where}: serialized functions are never loaded")
        if class_name in NEVER:
            raise KerasConfigError(f"{where}: {class_name} is not allowed: it runs code or reads files")
        if class_name != "__keras_tensor__":
            module = node.get("module", "keras")
            if not isinstance(module, str) or module not in ALLOWED_MODULES:
                raise KerasConfigError(f"{where}: objects from module {module!r} are not allowed")
            if node.get("registered_name") not in (None, class_name):
                raise KerasConfigError(f"{where}: custom (registered) objects are not allowed")
    for key, value in node.items():
        _refuse_unsafe(value, f"{path}.{key}")


# --- model shapes ---------------------------------------------------------------------------


def _model_body(config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if "class_name" in config:  # to_json() form
        class_name = config["class_name"]
        if class_name not in MODEL_CLASSES:
            raise KerasConfigError(f"keras_config: {class_name!r} is not a Sequential or functional model")
        body = config.get("config")
        if not isinstance(body, dict):
            raise KerasConfigError("keras_config.config must be an object")
        return body, "Sequential" if class_name == "Sequential" else "Functional"
    return config, "Functional" if "input_layers" in config else "Sequential"


def _sequential_graph(raw_layers: list[Any]) -> dict[str, Any]:
    shape = None
    layers = []
    for index, raw in enumerate(raw_layers):
        where = f"keras_config.layers[{index}]"
        if _class(raw, where) == "InputLayer":
            shape = _input_shape(raw, where)
            continue
        layers.append(_layer(raw, where))
    if not layers:
        raise KerasConfigError("keras_config: the model has no layers besides its input")
    inputs: dict[str, Any] = {"name": "features"}
    if shape is not None:
        inputs["shape"] = shape
    layers[0]["inputs"] = ["features"]
    return {"inputs": [inputs], "layers": layers, "outputs": [layers[-1]["name"]]}


def _functional_graph(body: dict[str, Any]) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for index, raw in enumerate(body["layers"]):
        where = f"keras_config.layers[{index}]"
        if _class(raw, where) == "InputLayer":
            inputs.append({"name": _name(raw, where), "shape": _input_shape(raw, where)})
            continue
        layer = _layer(raw, where)
        nodes = raw.get("inbound_nodes")
        if not isinstance(nodes, list) or not nodes:
            raise KerasConfigError(f"{where}: a layer of a functional model needs 'inbound_nodes'")
        for node_index, node in enumerate(nodes):
            sources = list(_node_sources(node, f"{where}.inbound_nodes[{node_index}]"))
            if node_index == 0:
                calls.append({**layer, "inputs": sources})
            else:
                name = _node_name(layer["name"], node_index)
                calls.append({"type": "Call", "layer": layer["name"], "name": name, "inputs": sources})
    outputs = [_history_name(ref, "keras_config.output_layers") for ref in _refs(body.get("output_layers"))]
    return {
        "inputs": inputs,
        "layers": _topological(calls, {i["name"] for i in inputs}),
        "outputs": outputs,
    }


def _node_sources(node: Any, where: str) -> Iterator[str]:
    if not isinstance(node, dict):
        raise KerasConfigError(f"{where}: must be an object with 'args'")
    kwargs = node.get("kwargs") or {}
    unknown = set(kwargs) - {"value", "key", "training", "mask"}
    if unknown:
        raise KerasConfigError(f"{where}: call arguments {sorted(unknown)} are not supported")
    if kwargs.get("mask") is not None:
        raise KerasConfigError(f"{where}: explicit masks are not supported")
    tensors = list(_tensors(node.get("args", [])))
    tensors += [kwargs[k] for k in ("value", "key") if kwargs.get(k) is not None]
    if not tensors:
        raise KerasConfigError(f"{where}: the call has no input tensors")
    for tensor in tensors:
        history = tensor.get("config", {}).get("keras_history")
        yield _history_name(history, where)


def _tensors(args: Any) -> Iterator[dict[str, Any]]:
    if isinstance(args, dict) and args.get("class_name") == "__keras_tensor__":
        yield args
    elif isinstance(args, list):
        for item in args:
            yield from _tensors(item)


def _refs(value: Any) -> list[Any]:
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [value]  # a single [name, node, tensor] reference
    return list(value or [])


def _history_name(history: Any, where: str) -> str:
    if not (isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)):
        raise KerasConfigError(f"{where}: a tensor reference must be [layer, node, tensor]")
    layer, node_index, tensor_index = history
    if tensor_index != 0:
        raise KerasConfigError(f"{where}: layers with several outputs are not supported")
    return _node_name(layer, int(node_index))


def _node_name(layer: str, node_index: int) -> str:
    return layer if node_index == 0 else f"{layer}__call{node_index}"


def _topological(calls: list[dict[str, Any]], available: set[str]) -> list[dict[str, Any]]:
    """Order calls so each comes after the nodes it reads (a shared layer's later calls may
    depend on layers listed after it)."""
    ordered, pending, known = [], list(calls), set(available)
    while pending:
        ready = [c for c in pending if set(c["inputs"]) <= known]
        if not ready:
            missing = sorted({i for c in pending for i in c["inputs"]} - known - {c["name"] for c in pending})
            raise KerasConfigError(f"keras_config: the graph refers to unknown or cyclic nodes {missing}")
        for call in ready:
            ordered.append(call)
            known.add(call["name"])
            pending.remove(call)
    return ordered


# --- one layer ------------------------------------------------------------------------------


def _class(raw: Any, where: str) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("class_name"), str):
        raise KerasConfigError(f"{where}: each layer must be an object with a 'class_name'")
    return str(raw["class_name"])


def _name(raw: dict[str, Any], where: str) -> str:
    name = raw.get("name") or raw.get("config", {}).get("name")
    if not isinstance(name, str):
        raise KerasConfigError(f"{where}: the layer has no name")
    return name


def _input_shape(raw: dict[str, Any], where: str) -> list[int]:
    config = raw.get("config", {})
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    shape = list(shape) if isinstance(shape, tuple) else shape
    if not isinstance(shape, list) or len(shape) < 2 or any(not isinstance(d, int) for d in shape[1:]):
        raise KerasConfigError(f"{where}: the input needs a fixed per-sample shape, got {shape}")
    return list(shape[1:])


def _layer(raw: dict[str, Any], where: str) -> dict[str, Any]:
    config = raw.get("config")
    if not isinstance(config, dict):
        raise KerasConfigError(f"{where}: 'config' must be an object")
    spec: dict[str, Any] = {"type": _class(raw, where), "name": _name(raw, where)}
    for key, value in config.items():
        if key == "name" or (key in DROPPED_WHEN and value == DROPPED_WHEN[key]):
            continue
        if key == "backward_layer":  # Bidirectional derives it from the forward layer again
            continue
        if key == "dtype":
            _check_dtype(value, f"{where}.config.dtype")
            continue
        spec[key] = _value(value, f"{where}.config.{key}")
    return spec


def _value(value: Any, where: str) -> Any:
    """A config value with nested Keras objects turned into `{"type": ..., **config}`."""
    if isinstance(value, dict) and "class_name" in value:
        if value["module"] == "keras.layers":  # a wrapped layer (Bidirectional, TimeDistributed)
            inner = _layer(value, where)
            inner.pop("name", None)
            return inner
        inner_config = value.get("config") or {}
        nested = {k: _value(v, f"{where}.{k}") for k, v in inner_config.items()}
        nested = {k: v for k, v in nested.items() if not (k in DROPPED_WHEN and v == DROPPED_WHEN[k])}
        return {"type": value["class_name"], **nested}
    if isinstance(value, list):
        return [_value(v, where) for v in value]
    return value


def _check_dtype(value: Any, where: str) -> None:
    name = value.get("config", {}).get("name") if isinstance(value, dict) else value
    if name not in (None, "float32"):
        raise KerasConfigError(f"{where}: only float32 layers are supported, got {name!r}")


def _describe(exc: ValidationError, graph: dict[str, Any]) -> str:
    from app.ml.spec import UNION_TAGS

    messages = []
    for error in exc.errors()[:5]:
        loc = list(error["loc"])
        where = "keras_config"
        if len(loc) >= 2 and loc[0] == "layers" and isinstance(loc[1], int):
            layer = graph["layers"][loc[1]]
            where = f"keras_config layer {layer.get('name')!r} ({layer.get('type')})"
            loc = loc[2:]
        field = ".".join(str(p) for p in loc if p not in UNION_TAGS and not isinstance(p, int))
        messages.append(f"{where}{': ' + field if field else ''}: {error['msg']}")
    return "; ".join(messages)
