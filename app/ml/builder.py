"""Turn a validated spec into a compiled keras.Model. Only allowlisted classes are reachable.

Both model forms are built as one graph: a stack is a graph whose layers each take the node
before them. Before a layer is called its input rank is checked (so a Conv2D on flat features
gets a sentence, not a traceback) and its parameter count estimated (so an oversized model is
refused before its weights are allocated).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras

from app.ml.data import TabularInputs
from app.ml.layers import ATTENTION_LAYERS, MERGE_LAYERS, Call, Dense, LayerBase
from app.ml.objects import SpecModel
from app.ml.spec import (
    CompileSpec,
    FunctionalModel,
    GraphInput,
    KerasConfigModel,
    SequentialModel,
    SpecError,
    TrainingSpec,
)
from app.ml.tabular import encode_rows

# What Keras raises when arguments or shapes do not fit; reported as a SpecError (422).
KERAS_ARGUMENT_ERRORS = (ValueError, TypeError, IndexError, KeyError, NotImplementedError)

# Layers whose input must have this rank, and how to describe it.
RANKS: dict[str, tuple[int, str]] = {}
for _names, _rank, _axes in (
    (("Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D",
      "UpSampling1D", "ZeroPadding1D", "Cropping1D", "SpatialDropout1D", "SimpleRNN", "LSTM", "GRU",
      "Bidirectional"), 3, "(batch, steps, channels)"),
    (("Conv2D", "Conv2DTranspose", "SeparableConv2D", "DepthwiseConv2D", "MaxPooling2D",
      "AveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling2D", "UpSampling2D",
      "ZeroPadding2D", "Cropping2D", "SpatialDropout2D", "CenterCrop", "Resizing", "RandomFlip",
      "RandomRotation", "RandomZoom", "RandomTranslation", "RandomCrop", "RandomContrast"),
     4, "(batch, height, width, channels)"),
    (("Conv3D", "MaxPooling3D", "AveragePooling3D", "GlobalMaxPooling3D", "GlobalAveragePooling3D",
      "UpSampling3D", "ZeroPadding3D", "Cropping3D", "SpatialDropout3D"),
     5, "(batch, depth, height, width, channels)"),
):  # fmt: skip
    RANKS.update(dict.fromkeys(_names, (_rank, _axes)))


@dataclass
class BuiltModel:
    model: keras.Model
    # Normalization layers to adapt before fitting, each with the node whose values it sees
    # (in the order they must be adapted: an earlier one may feed a later one).
    to_adapt: list[tuple[keras.layers.Layer, Any]] = field(default_factory=list)


def as_graph(model_spec: SequentialModel | FunctionalModel | KerasConfigModel) -> FunctionalModel:
    """A stack as the equivalent graph (one input named `features`)."""
    if isinstance(model_spec, KerasConfigModel):
        return model_spec.graph
    if isinstance(model_spec, FunctionalModel):
        return model_spec
    first = model_spec.layers[0]
    shape = model_spec.input_shape
    if shape is None and isinstance(first, Dense):
        shape = first.input_shape or ([first.input_dim] if first.input_dim else None)
    return FunctionalModel.model_construct(
        inputs=[GraphInput(name="features", shape=shape)], layers=model_spec.layers, outputs=[]
    )


def build_model(
    spec: TrainingSpec,
    input_shapes: dict[str, Sequence[int]],
    max_params: int | None = None,
    tabular: TabularInputs | None = None,
) -> BuiltModel:
    """Build and compile the model for inputs of the given per-sample shapes.

    With `tabular`, the model takes whole dataset rows (one input, `features`) and encodes them
    into each graph input itself (app/ml/tabular.py), so training and predict feed plain rows.
    Raises SpecError naming the layer that does not fit, or the model when it is too large.
    """
    graph = as_graph(spec.model)
    stacked = isinstance(spec.model, SequentialModel)
    model_inputs: list[Any]
    to_adapt: list[tuple[keras.layers.Layer, Any]] = []
    if tabular is None:
        nodes: dict[str, Any] = {
            graph_input.name: keras.Input(shape=tuple(input_shapes[graph_input.name]), name=graph_input.name)
            for graph_input in graph.inputs
        }
        model_inputs = list(nodes.values())
    else:
        rows, nodes, to_adapt = encode_rows(tabular)
        model_inputs = [rows]
    input_names = set(nodes)
    layers: dict[str, keras.layers.Layer] = {}
    previous = next(iter(nodes))
    params = 0
    for index, layer_spec in enumerate(graph.layers):
        path = f"model.layers[{index}]"
        node_name = layer_spec.name or f"layer_{index}"
        if node_name in nodes:
            raise SpecError(f"{path}.name", f"the name {node_name!r} is used twice")
        sources = _sources(layer_spec, previous, nodes, path, stacked)
        if isinstance(layer_spec, Call):
            layer = layers.get(layer_spec.layer)
            if layer is None:
                raise SpecError(f"{path}.layer", f"no layer named {layer_spec.layer!r} before this one")
        else:
            _check_rank(layer_spec, sources, path)
            params += _estimate_params(layer_spec, sources[0].shape)
            if max_params is not None and params > max_params:
                raise SpecError(
                    path,
                    f"the model reaches {params:,} parameters here, over the limit of {max_params:,}",
                )
            try:
                layer = make_layer(layer_spec, node_name)
            except KERAS_ARGUMENT_ERRORS as exc:  # Keras's own argument checks
                raise SpecError(path, f"{layer_spec.type}: {_first_line(exc)}") from exc
            layers[node_name] = layer
            if layer_spec.type == "Normalization" and getattr(layer_spec, "mean", None) is None:
                source_name = (layer_spec.inputs or [previous])[0]
                if source_name not in input_names:
                    raise SpecError(path, "a Normalization without mean and variance must take a model input "
                                    "directly: it is adapted to the raw features")  # fmt: skip
                to_adapt.append((layer, nodes[source_name]))
        nodes[node_name] = _call(layer, layer_spec, sources, path)
        previous = node_name
    output_names = [o.node for o in graph.output_specs] if graph.outputs else [previous]
    for index, name in enumerate(output_names):
        if name not in nodes:
            raise SpecError(f"model.outputs[{index}]", f"no node named {name!r}; nodes are: {', '.join(nodes)}")
    outputs = [nodes[name] for name in output_names]
    model = keras.Model(
        inputs=model_inputs if len(model_inputs) > 1 else model_inputs[0],
        outputs=outputs if len(outputs) > 1 else outputs[0],
        name="trainyard_model",
    )
    if max_params is not None and model.count_params() > max_params:
        raise SpecError(
            "model",
            f"the model has {model.count_params():,} parameters, over the limit of {max_params:,}",
        )
    try:
        _compile(model, spec.compile, spec.fit.steps_per_execution, output_names)
    except KERAS_ARGUMENT_ERRORS as exc:
        raise SpecError("compile", _first_line(exc)) from exc
    return BuiltModel(model=model, to_adapt=to_adapt)


def make_layer(layer_spec: LayerBase, name: str | None = None) -> keras.layers.Layer:
    """The Keras layer for one spec (its `type` is a Literal of the catalog: never user code)."""
    kwargs = {key: _keras_object(key, value) for key, value in layer_spec.kwargs().items() if key != "layer"}
    inner = getattr(layer_spec, "layer", None)
    if isinstance(inner, LayerBase):  # Bidirectional, TimeDistributed: a wrapped layer spec
        kwargs["layer"] = make_layer(inner)
    if name is None:
        kwargs.pop("name", None)
    trainable = kwargs.pop("trainable", True)  # not every constructor takes it (SpatialDropout*)
    layer = getattr(keras.layers, layer_spec.type)(**kwargs)
    layer.trainable = trainable
    return layer


def _keras_object(key: str, value: Any) -> Any:
    """Nested `{"type": ...}` objects (initializers, regularizers, constraints) as Keras objects."""
    if isinstance(value, dict) and "type" in value:
        module = _OBJECT_MODULES[_object_kind(key)]
        arguments = {k: v for k, v in value.items() if k != "type"}
        return getattr(module, value["type"])(**arguments)
    return value


_OBJECT_MODULES = {
    "initializer": keras.initializers,
    "regularizer": keras.regularizers,
    "constraint": keras.constraints,
}


def _object_kind(key: str) -> str:
    for kind in _OBJECT_MODULES:
        if key.endswith(kind):
            return kind
    raise ValueError(f"{key} takes no object")  # unreachable: the spec types forbid it


def _sources(layer_spec: LayerBase, previous: str, nodes: dict[str, Any], path: str, stacked: bool) -> list[Any]:
    if stacked and layer_spec.inputs:
        raise SpecError(f"{path}.inputs", "layers of a stack take the layer before them; use the graph form")
    names = layer_spec.inputs or [previous]
    for position, name in enumerate(names):
        if name not in nodes:
            raise SpecError(
                f"{path}.inputs[{position}]",
                f"no node named {name!r} before this layer; known: {', '.join(nodes)}",
            )
    sources = [nodes[name] for name in names]
    kind = layer_spec.type
    if kind in MERGE_LAYERS and len(sources) < 2:
        hint = " (in a stack every layer has one input; use the graph form)" if stacked else ""
        raise SpecError(f"{path}.inputs", f"{kind} merges two or more nodes{hint}")
    if kind not in MERGE_LAYERS | ATTENTION_LAYERS and len(sources) != 1:
        raise SpecError(f"{path}.inputs", f"{kind} takes exactly one input, got {len(sources)}")
    if kind in ATTENTION_LAYERS and len(sources) > 3:
        raise SpecError(f"{path}.inputs", f"{kind} takes [query, value] or [query, value, key]")
    return sources


def _call(layer: keras.layers.Layer, layer_spec: LayerBase, sources: list[Any], path: str) -> Any:
    kind = layer_spec.type if not isinstance(layer_spec, Call) else type(layer).__name__
    try:
        if kind in MERGE_LAYERS:
            return layer(sources)
        if kind == "MultiHeadAttention":
            query, value = sources[0], sources[1] if len(sources) > 1 else sources[0]
            key = sources[2] if len(sources) > 2 else None
            return layer(query, value, key=key)
        if kind == "Attention":
            return layer(sources if len(sources) > 1 else [sources[0], sources[0]])
        return layer(sources[0])
    except KERAS_ARGUMENT_ERRORS as exc:
        shapes = ", ".join(_shape(s.shape) for s in sources)
        raise SpecError(path, f"{kind} cannot take input of shape {shapes}: {_first_line(exc)}") from exc


def _check_rank(layer_spec: LayerBase, sources: list[Any], path: str) -> None:
    kind = layer_spec.type
    if kind == "TimeDistributed" and len(sources[0].shape) < 3:
        raise SpecError(
            path,
            f"TimeDistributed needs input of rank 3 or more (batch, steps, ...); it gets {_shape(sources[0].shape)}",
        )
    if kind not in RANKS:
        return
    rank, axes = RANKS[kind]
    shape = sources[0].shape
    if len(shape) != rank:
        hint = (
            " Reshape the features (a Reshape layer) or use Dense." if len(shape) < rank else " Flatten or pool first."
        )
        raise SpecError(path, f"{kind} needs input of rank {rank} {axes}; it gets {_shape(shape)}.{hint}")


def _estimate_params(layer_spec: SpecModel, input_shape: Sequence[int | None]) -> int:
    """Weights a layer will create, computed from its arguments before anything is allocated."""
    spec: Any = layer_spec
    kind = spec.type
    channels = int(input_shape[-1] or 1)
    if kind == "Dense":
        return channels * spec.units + spec.units
    if kind in ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose"):
        dims = {"Conv1D": 1, "Conv3D": 3}.get(kind, 2)
        return _kernel_volume(spec.kernel_size, dims) * channels * spec.filters + spec.filters
    if kind in ("DepthwiseConv2D", "SeparableConv2D"):
        depthwise = _kernel_volume(spec.kernel_size, 2) * channels * spec.depth_multiplier
        pointwise = channels * spec.depth_multiplier * spec.filters if kind == "SeparableConv2D" else 0
        return depthwise + pointwise + channels * spec.depth_multiplier
    if kind == "Embedding":
        return int(spec.input_dim) * int(spec.output_dim)
    if kind in ("SimpleRNN", "LSTM", "GRU"):
        gates = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
        return gates * spec.units * (channels + spec.units + 2)
    if kind == "Bidirectional":
        return 2 * _estimate_params(spec.layer, input_shape)
    if kind == "TimeDistributed":
        return _estimate_params(spec.layer, input_shape[1:])
    if kind == "MultiHeadAttention":
        value_dim = spec.value_dim or spec.key_dim
        return (
            spec.num_heads * (2 * spec.key_dim + value_dim) * (channels + 1)
            + spec.num_heads * value_dim * channels
            + channels
        )
    if kind in ("BatchNormalization", "LayerNormalization", "GroupNormalization"):
        return 4 * channels
    return 0


def _kernel_volume(kernel_size: int | list[int], dims: int) -> int:
    return kernel_size**dims if isinstance(kernel_size, int) else math.prod(kernel_size)


def _compile(model: keras.Model, spec: CompileSpec, steps_per_execution: int, output_names: list[str]) -> None:
    optimizer: Any = spec.optimizer
    if not isinstance(optimizer, str):
        arguments = optimizer.kwargs()
        if isinstance(optimizer.learning_rate, SpecModel):
            arguments["learning_rate"] = _instantiate(keras.optimizers.schedules, optimizer.learning_rate)
        optimizer = getattr(keras.optimizers, optimizer.type)(**arguments)
    model.compile(
        optimizer=optimizer,
        loss=_per_output(spec.loss, output_names, _loss),
        loss_weights=spec.loss_weights,
        metrics=_metrics(spec.metrics, output_names),
        steps_per_execution=steps_per_execution,
    )


def _instantiate(module: Any, spec: Any) -> Any:
    """A `{"type": <class>, **arguments}` spec object as that class of the Keras `module`."""
    return getattr(module, spec.type)(**spec.kwargs())


def _loss(value: Any) -> Any:
    return _instantiate(keras.losses, value) if isinstance(value, SpecModel) else value


def _metric(value: Any) -> Any:
    return _instantiate(keras.metrics, value) if isinstance(value, SpecModel) else value


def _per_output(value: Any, output_names: list[str], convert: Any) -> Any:
    if isinstance(value, dict):
        return {name: convert(v) for name, v in value.items()}
    if len(output_names) > 1:
        return {name: convert(value) for name in output_names}
    return convert(value)


def _metrics(value: list[Any] | dict[str, list[Any]], output_names: list[str]) -> Any:
    if isinstance(value, dict):
        return {name: [_metric(m) for m in metrics] for name, metrics in value.items()}
    if len(output_names) > 1:
        # Keras wants metrics per output; metric objects are stateful, so one set per output.
        return {name: [_metric(m) for m in value] for name in output_names}
    return [_metric(m) for m in value]


def _shape(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
