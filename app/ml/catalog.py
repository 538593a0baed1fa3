"""What a spec may use, described for UIs and clients: derived from the spec classes themselves."""

from functools import lru_cache
from typing import Any, get_args

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
        },
        "schedules": _union(optimization.Schedule),
        "losses": {"names": list(get_args(optimization.LossName)), "objects": _union(optimization.LossObject)},
        "metrics": {"names": list(get_args(optimization.MetricName)), "objects": _union(optimization.MetricObject)},
        "activations": list(get_args(objects.ActivationName)),
        "initializers": {
            "names": list(get_args(objects.InitializerName)),
            "objects": _union(objects.InitializerObject),
        },
        "regularizers": {"names": ["l1", "l2", "l1_l2"], "objects": _union(objects.RegularizerObject)},
        "constraints": {
            "names": ["max_norm", "non_neg", "unit_norm", "min_max_norm"],
            "objects": _union(objects.ConstraintObject),
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
        if (
            annotation == alias
            or plain == alias
            or (members and _is_union(alias) and set(members) == set(get_args(alias)))
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
