"""What a spec may use, described for UIs and clients: derived from the spec classes themselves."""

from functools import lru_cache
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter

from app.ml import objects, optimization
from app.ml.layers import LAYER_CLASSES, NON_KERAS_FIELDS


def describe(model: type[BaseModel]) -> dict[str, Any]:
    """One class: its docstring and arguments (JSON Schema, default, required)."""
    arguments = {}
    for name, field in model.model_fields.items():
        if name in NON_KERAS_FIELDS:
            continue
        entry: dict[str, Any] = {"required": field.is_required(), "schema": _schema(field.annotation)}
        if not field.is_required():
            entry["default"] = field.get_default(call_default_factory=True)
        if field.description:
            entry["description"] = field.description
        arguments[name] = entry
    doc = (model.__doc__ or "").strip()
    return {"doc": doc if not doc.startswith(f"{model.__name__}(") else "", "arguments": arguments}


@lru_cache
def catalog() -> dict[str, Any]:
    return {
        "layers": {name: describe(cls) for name, cls in LAYER_CLASSES.items()},
        "optimizers": {
            "names": list(get_args(optimization.OptimizerName)),
            "objects": _union(optimization.Optimizer),
            # Keras lowercases optimizer names: any capitalisation of a name is that optimizer.
            "aliases": {name: name.lower() for name in optimization.OPTIMIZERS.objects},
        },
        "schedules": _union(optimization.Schedule),
        "losses": {
            "names": list(get_args(optimization.LossName)),
            "objects": _union(optimization.LossObject),
            "aliases": dict(optimization.LOSSES.aliases),
        },
        "metrics": {
            "names": list(get_args(optimization.MetricName)),
            "objects": _union(optimization.MetricObject),
            "aliases": dict(optimization.METRICS.aliases),
        },
        "activations": list(get_args(objects.ActivationNames)),
        "initializers": {
            "names": list(get_args(objects.InitializerName)),
            "objects": _union(objects.InitializerObject),
            "aliases": dict(objects.INITIALIZERS.aliases),
        },
        "regularizers": {
            "names": list(get_args(objects.RegularizerName)),
            "objects": _union(objects.RegularizerObject),
            "aliases": dict(objects.REGULARIZERS.aliases),
        },
        "constraints": {
            "names": list(get_args(objects.ConstraintName)),
            "objects": _union(objects.ConstraintObject),
            "aliases": dict(objects.CONSTRAINTS.aliases),
        },
    }


def _union(annotated: Any) -> dict[str, Any]:
    members = get_args(get_args(annotated)[0])
    return {member.__name__: describe(member) for member in members}


# Argument types described by reference to another section of the catalog, not inlined.
_SECTIONS = {
    "initializer": objects.Initializer,
    "regularizer": objects.Regularizer,
    "constraint": objects.Constraint,
    "activation": objects.ActivationName,
    "learning_rate": optimization.LearningRate,
}


def _schema(annotation: Any) -> dict[str, Any]:
    members = [a for a in get_args(annotation) if a is not type(None)] if _is_union(annotation) else [annotation]
    plain = members[0] if len(members) == 1 else None
    for section, alias in _SECTIONS.items():
        inner = get_args(alias)[0] if get_origin(alias) is Annotated else alias
        if (
            annotation in (alias, inner)
            or plain in (alias, inner)
            or (members and _is_union(inner) and set(members) == set(get_args(inner)))
        ):
            nullable = type(None) in get_args(annotation)
            return {"see": f"{section}s" if section != "learning_rate" else "schedules", "nullable": nullable}
    try:
        return TypeAdapter(annotation).json_schema()
    except Exception:  # a forward reference (TimeDistributed.layer)
        return {"see": "layers"}


def _is_union(annotation: Any) -> bool:
    return type(annotation).__name__ in ("UnionType", "_UnionGenericAlias") or str(annotation).startswith(
        "typing.Union"
    )
