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
from keras.src.applications.convnext import LayerScale as KerasLayerScale
from keras.src.applications.inception_resnet_v2 import CustomScaleLayer as KerasCustomScaleLayer
from keras.src.ops import nn as keras_ops_nn
from keras.src.ops import numpy as keras_ops_numpy

from app.ml.data import TabularInputs
from app.ml.layers import ATTENTION_LAYERS, MERGE_LAYERS, Call, Dense, LayerBase, NestedModel
from app.ml.layers.keras_internal import OPERATIONS, CustomScaleLayer, Operation
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

# The layer classes of keras.applications models that keras.layers does not export.
INTERNAL_LAYERS: dict[str, type[keras.layers.Layer]] = {
    "LayerScale": KerasLayerScale,
    "CustomScaleLayer": KerasCustomScaleLayer,
}
ACTIVATION_BYTES_PER_VALUE = 4  # float32: every layer output is float32 (the spec refuses other dtypes)

# Layers whose input must have this rank, and how to describe it.
RANKS: dict[str, tuple[int, str]] = {}
for _names, _rank, _axes in (
    (("Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D",
      "UpSampling1D", "ZeroPadding1D", "Cropping1D", "SpatialDropout1D", "SimpleRNN", "LSTM", "GRU",
      "Bidirectional", "Conv1DTranspose"), 3, "(batch, steps, channels)"),
    (("Conv2D", "Conv2DTranspose", "SeparableConv2D", "DepthwiseConv2D", "MaxPooling2D",
      "AveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling2D", "UpSampling2D",
      "ZeroPadding2D", "Cropping2D", "SpatialDropout2D", "CenterCrop", "Resizing", "RandomFlip",
      "RandomRotation", "RandomZoom", "RandomTranslation", "RandomCrop", "RandomContrast"),
     4, "(batch, height, width, channels)"),
    (("Conv3D", "MaxPooling3D", "AveragePooling3D", "GlobalMaxPooling3D", "GlobalAveragePooling3D",
      "UpSampling3D", "ZeroPadding3D", "Cropping3D", "SpatialDropout3D", "Conv3DTranspose"),
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
    max_activation_bytes: int | None = None,
    output_dtype: str | None = None,
) -> BuiltModel:
    """Build and compile the model for inputs of the given per-sample shapes.

    With `tabular`, the model takes whole dataset rows (one input, `features`) and encodes them
    into each graph input itself (app/ml/tabular.py), so training and predict feed plain rows.
    With `output_dtype`, the output layers compute in it whatever the global dtype policy (float32
    outputs under mixed_bfloat16, so losses and metrics see float32).
    Raises SpecError naming the layer that does not fit, or the model when it is too large
    (parameters, or activation memory of one batch of `fit.batch_size` rows).
    """
    graph = as_graph(spec.model)
    last = len(graph.layers) - 1
    output_nodes = (
        {o.node for o in graph.output_specs} if graph.outputs else {graph.layers[last].name or f"layer_{last}"}
    )
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
    budget = _Budget(max_params, max_activation_bytes, spec.fit.batch_size)
    stacked = isinstance(spec.model, SequentialModel)
    builder = _GraphBuilder(budget, to_adapt, input_names=set(nodes), stacked=stacked)
    builder.output_dtype, builder.output_nodes = output_dtype, output_nodes
    previous = builder.add_layers(graph.layers, nodes, "model")
    output_names = [o.node for o in graph.output_specs] if graph.outputs else [previous]
    outputs = _outputs(nodes, output_names, "model.outputs")
    model = _model(model_inputs, outputs, "trainyard_model", "model")
    if max_params is not None and model.count_params() > max_params:
        raise SpecError(
            "model",
            f"the model has {model.count_params():,} parameters, over the limit of {max_params:,}",
        )
    try:
        _compile(model, spec.compile, spec.fit.steps_per_execution or 1, output_names)
    except KERAS_ARGUMENT_ERRORS as exc:
        raise SpecError("compile", _first_line(exc)) from exc
    return BuiltModel(model=model, to_adapt=to_adapt)


@dataclass
class _Budget:
    """What the layers built so far cost, against the caps: parameters (estimated from each
    layer's arguments before its weights exist) and activation memory of one training batch
    (from each node's symbolic output shape, before anything runs)."""

    max_params: int | None
    max_activation_bytes: int | None
    batch_size: int
    params: int = 0
    activation_bytes: int = 0

    def add_params(self, count: int, path: str) -> None:
        self.params += count
        if self.max_params is not None and self.params > self.max_params:
            raise SpecError(
                path, f"the model reaches {self.params:,} parameters here, over the limit of {self.max_params:,}"
            )

    def add_output(self, output: Any, path: str) -> None:
        if self.max_activation_bytes is None:
            return
        for tensor in output if isinstance(output, (list, tuple)) else [output]:
            # An unknown (variable) dimension counts as 1: the estimate is a lower bound then.
            per_sample = math.prod(int(d or 1) for d in tensor.shape[1:])
            self.activation_bytes += per_sample * ACTIVATION_BYTES_PER_VALUE * self.batch_size
        if self.activation_bytes > self.max_activation_bytes:
            raise SpecError(
                path,
                f"the model's activations for one batch of {self.batch_size} reach about "
                f"{_gib(self.activation_bytes)} here, over the limit of {_gib(self.max_activation_bytes)} "
                "(TRAINYARD_MAX_ACTIVATION_BYTES); use smaller layers or a smaller fit.batch_size",
            )


def _gib(n: int) -> str:
    return f"{n / (1 << 30):,.2f} GiB"


class _GraphBuilder:
    """Calls the layers of a graph (and of the graphs of nested models) on Keras tensors."""

    def __init__(self, budget: _Budget, to_adapt: list[tuple[Any, Any]], input_names: set[str], stacked: bool) -> None:
        self.budget = budget
        self.to_adapt = to_adapt
        self.input_names = input_names  # the model's own inputs: what Normalization may adapt on
        self.stacked = stacked
        # The model's output nodes compute in `output_dtype` (float32 under mixed precision).
        self.output_dtype: str | None = None
        self.output_nodes: set[str] = set()

    def add_layers(self, layer_specs: Sequence[LayerBase], nodes: dict[str, Any], prefix: str) -> str:
        """Call each layer on its input nodes, adding its output to `nodes`; returns the last node."""
        layers: dict[str, tuple[Any, LayerBase]] = {}
        previous = next(iter(nodes))
        for index, layer_spec in enumerate(layer_specs):
            path = f"{prefix}.layers[{index}]"
            node_name = layer_spec.name or f"layer_{index}"
            if node_name in nodes:
                raise SpecError(f"{path}.name", f"the name {node_name!r} is used twice")
            sources = _sources(layer_spec, previous, nodes, path, self.stacked)
            if isinstance(layer_spec, Call):
                if layer_spec.layer not in layers:
                    raise SpecError(f"{path}.layer", f"no layer named {layer_spec.layer!r} before this one")
                layer, called_spec = layers[layer_spec.layer]
                _check_arity(called_spec, sources, path)
            else:
                layer = self._make(layer_spec, node_name, sources, path, nodes, previous)
                layers[node_name] = (layer, layer_spec)
                called_spec = layer_spec
            nodes[node_name] = _call(layer, called_spec, sources, path)
            self.budget.add_output(nodes[node_name], path)
            previous = node_name
        return previous

    def _make(
        self, layer_spec: LayerBase, node_name: str, sources: list[Any], path: str, nodes: dict[str, Any], previous: str
    ) -> Any:
        if isinstance(layer_spec, NestedModel):
            return self._nested(layer_spec, node_name, sources, path)
        _check_rank(layer_spec, sources, path)
        self.budget.add_params(_estimate_params(layer_spec, sources[0].shape), path)
        try:
            dtype = self.output_dtype if node_name in self.output_nodes else None
            layer = make_layer(layer_spec, node_name, dtype)
        except KERAS_ARGUMENT_ERRORS as exc:  # Keras's own argument checks
            raise SpecError(path, f"{layer_spec.type}: {_first_line(exc)}") from exc
        if _needs_adapting(layer_spec):
            source_name = (layer_spec.inputs or [previous])[0]
            if source_name not in self.input_names:
                what = "mean and variance" if layer_spec.type == "Normalization" else "bin_boundaries"
                raise SpecError(path, f"a {layer_spec.type} without {what} must take a model input "
                                "directly: it is adapted to the raw features")  # fmt: skip
            self.to_adapt.append((layer, nodes[source_name]))
        return layer

    def _nested(self, layer_spec: NestedModel, node_name: str, sources: list[Any], path: str) -> keras.Model:
        """A nested graph as its own keras.Model, built on inputs shaped like the nodes it is called on."""
        graph = layer_spec.graph
        if len(sources) != len(graph.inputs):
            raise SpecError(f"{path}.inputs", f"the model takes {len(graph.inputs)} input(s), got {len(sources)}")
        inner: dict[str, Any] = {}
        for position, (graph_input, source) in enumerate(zip(graph.inputs, sources, strict=True)):
            shape = tuple(graph_input.shape) if graph_input.shape else tuple(source.shape[1:])
            if tuple(source.shape[1:]) != shape:
                raise SpecError(
                    f"{path}.graph.inputs[{position}].shape",
                    f"the model takes shape {list(shape)} but is called on {_shape(source.shape)}",
                )
            inner[graph_input.name] = keras.Input(shape=shape)
        inputs = list(inner.values())
        nested = _GraphBuilder(self.budget, self.to_adapt, input_names=set(), stacked=False)
        nested.add_layers(graph.layers, inner, f"{path}.graph")
        outputs = _outputs(inner, graph.outputs, f"{path}.graph.outputs")
        model = _model(inputs, outputs, node_name, path)
        model.trainable = layer_spec.trainable
        return model


def _model(inputs: list[Any], outputs: list[Any], name: str, path: str) -> keras.Model:
    try:
        return keras.Model(
            inputs=inputs if len(inputs) > 1 else inputs[0],
            outputs=outputs if len(outputs) > 1 else outputs[0],
            name=name,
        )
    except KERAS_ARGUMENT_ERRORS as exc:  # an output that is an input, say
        raise SpecError(path, f"not a model Keras can make: {_first_line(exc)}") from exc


def _outputs(nodes: dict[str, Any], output_names: Sequence[str], path: str) -> list[Any]:
    for index, name in enumerate(output_names):
        if name not in nodes:
            raise SpecError(f"{path}[{index}]", f"no node named {name!r}; nodes are: {', '.join(nodes)}")
    return [nodes[name] for name in output_names]


def make_layer(layer_spec: LayerBase, name: str | None = None, dtype: str | None = None) -> keras.layers.Layer:
    """The Keras layer for one spec (its `type` is a Literal of the catalog: never user code)."""
    kwargs = {key: _keras_object(key, value) for key, value in layer_spec.kwargs().items() if key != "layer"}
    if dtype is not None:
        kwargs["dtype"] = dtype
    inner = getattr(layer_spec, "layer", None)
    if isinstance(inner, LayerBase):  # Bidirectional, TimeDistributed: a wrapped layer spec
        kwargs["layer"] = make_layer(inner, None, dtype)
    if name is None:
        kwargs.pop("name", None)
    if isinstance(layer_spec, Operation):  # a keras.ops function: its own typed arguments only
        module = keras_ops_numpy if OPERATIONS[layer_spec.op][0] == "numpy" else keras_ops_nn
        return getattr(module, layer_spec.op)(name=name, **layer_spec.keras_arguments())
    trainable = kwargs.pop("trainable", True)  # not every constructor takes it (SpatialDropout*)
    layer_class = INTERNAL_LAYERS.get(layer_spec.type) or getattr(keras.layers, layer_spec.type)
    layer = layer_class(**kwargs)
    layer.trainable = trainable
    return layer


def _needs_adapting(layer_spec: LayerBase) -> bool:
    """Normalization without statistics and Discretization without boundaries learn them from the data."""
    if layer_spec.type == "Normalization":
        return getattr(layer_spec, "mean", None) is None
    return layer_spec.type == "Discretization" and getattr(layer_spec, "bin_boundaries", None) is None


# Spec names that Keras's get() spells differently (keras.regularizers.get("l1_l2") fails).
_KERAS_SPELLING = {"l1_l2": "l1l2"}


def _keras_object(key: str, value: Any) -> Any:
    """Nested `{"type": ...}` objects (initializers, regularizers, constraints) as Keras objects."""
    if isinstance(value, str) and key.endswith("regularizer"):
        return _KERAS_SPELLING.get(value, value)
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
    if not isinstance(layer_spec, Call):
        _check_arity(layer_spec, sources, path, stacked)
    return sources


def _check_arity(layer_spec: LayerBase, sources: list[Any], path: str, stacked: bool = False) -> None:
    """How many input nodes a layer takes."""
    kind = layer_spec.type
    if isinstance(layer_spec, Operation):
        wanted = layer_spec.tensor_slots()
        if len(sources) != wanted:
            raise SpecError(
                f"{path}.inputs", f"the {layer_spec.op} operation's args take {wanted} node(s), got {len(sources)}"
            )
        return
    if isinstance(layer_spec, NestedModel | CustomScaleLayer):
        wanted = len(layer_spec.graph.inputs) if isinstance(layer_spec, NestedModel) else 2
        if len(sources) != wanted:
            raise SpecError(f"{path}.inputs", f"{kind} takes {wanted} input node(s), got {len(sources)}")
        return
    if kind in MERGE_LAYERS and len(sources) < 2:
        hint = " (in a stack every layer has one input; use the graph form)" if stacked else ""
        raise SpecError(f"{path}.inputs", f"{kind} merges two or more nodes{hint}")
    if kind not in MERGE_LAYERS | ATTENTION_LAYERS and len(sources) != 1:
        raise SpecError(f"{path}.inputs", f"{kind} takes exactly one input, got {len(sources)}")
    if kind in ATTENTION_LAYERS and len(sources) > 3:
        raise SpecError(f"{path}.inputs", f"{kind} takes [query, value] or [query, value, key]")


def _call(layer: Any, layer_spec: LayerBase, sources: list[Any], path: str) -> Any:
    """Call `layer` (made from `layer_spec`) on its input nodes, as that kind of layer takes them."""
    kind = layer_spec.type
    try:
        if isinstance(layer_spec, Operation):
            remaining = iter(sources)
            args = [
                next(remaining) if a is None else [next(remaining) for _ in a] if isinstance(a, list) else a
                for a in layer_spec.args
            ]
            return layer(*args)
        if kind in MERGE_LAYERS or kind == "CustomScaleLayer" or (kind == "Model" and len(sources) > 1):
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
        what = f"the {layer_spec.op} operation" if isinstance(layer_spec, Operation) else kind  # type: ignore[attr-defined]
        raise SpecError(path, f"{what} cannot take input of shape {shapes}: {_first_line(exc)}") from exc


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
    if kind in ("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        dims = int(kind[4])
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
    if kind == "LayerScale":
        return int(spec.projection_dim)
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


def compile_single_output(model: keras.Model, spec: CompileSpec, steps_per_execution: int) -> None:
    """Compile a one-output model that Keras cannot name outputs of (a subclassed wrapper, such
    as app.ml.distill's) as the spec says: a per-output loss or metrics dict gives its one value."""
    loss = next(iter(spec.loss.values())) if isinstance(spec.loss, dict) else spec.loss
    metrics = next(iter(spec.metrics.values()), []) if isinstance(spec.metrics, dict) else spec.metrics
    flat = spec.model_copy(update={"loss": loss, "metrics": metrics, "loss_weights": None})
    _compile(model, flat, steps_per_execution, ["output"])


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
