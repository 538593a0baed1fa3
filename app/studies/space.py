"""A study's search space: Optuna distributions, points written into the base request by JSON
Pointer, and the corners that are checked before the study is accepted."""

import copy
import itertools
from typing import Any

import jsonpointer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from app.studies.schemas import Param, ParamType

# Above this many corner combinations, check each dimension's extremes with the others at their
# lowest, plus the all-low and all-high points, instead of the whole product.
MAX_CORNER_PRODUCT = 32


class SpaceError(ValueError):
    """A pointer or point of the space cannot give a job request. `pointer` names the key."""

    def __init__(self, pointer: str, message: str, point: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.pointer = pointer
        self.message = message
        self.point = point


def distributions(space: dict[str, Param]) -> dict[str, BaseDistribution]:
    """Optuna's distribution per pointer."""
    made: dict[str, BaseDistribution] = {}
    for pointer, param in space.items():
        if param.type is ParamType.CATEGORICAL:
            made[pointer] = CategoricalDistribution(list(param.choices or []))
        elif param.type is ParamType.INT:
            step = int(param.step) if param.step is not None else 1
            made[pointer] = IntDistribution(int(param.low or 0), int(param.high or 0), log=param.log, step=step)
        else:
            low, high = float(param.low or 0), float(param.high or 0)
            made[pointer] = FloatDistribution(low, high, log=param.log, step=param.step)
    return made


def grid(space: dict[str, Param], max_points: int = 10_000) -> dict[str, list[Any]]:
    """The grid sampler's values per pointer: choices, every int step, every float step.
    Raises SpaceError for a float without `step` or a grid over `max_points`."""
    values: dict[str, list[Any]] = {}
    for pointer, param in space.items():
        if param.type is ParamType.CATEGORICAL:
            values[pointer] = list(param.choices or [])
        elif param.type is ParamType.INT:
            values[pointer] = list(range(int(param.low or 0), int(param.high or 0) + 1, int(param.step or 1)))
        elif param.step is None:
            raise SpaceError(pointer, "the grid sampler needs a `step` for a float parameter (or use tpe or random)")
        else:
            low, high, width = float(param.low or 0), float(param.high or 0), param.step
            count = int((high - low) / width + 1e-9) + 1
            values[pointer] = [round(low + i * width, 12) for i in range(count)]
    size = 1
    for pointer, options in values.items():
        size *= len(options)
        if size > max_points:
            raise SpaceError(pointer, f"the grid has over {max_points:,} points; use tpe or random")
    return values


def check_pointers(base: dict[str, Any], space: dict[str, Param]) -> None:
    """Every key is a JSON Pointer whose parent exists in `base` (the target may be new)."""
    for pointer in space:
        if pointer == "/dataset_id" or pointer.startswith("/dataset_id/"):
            raise SpaceError(pointer, "the dataset is the study's `dataset_id`, not a parameter")
        try:
            parsed = jsonpointer.JsonPointer(pointer)
        except jsonpointer.JsonPointerException as exc:
            raise SpaceError(pointer, f"not a JSON Pointer ({exc}); write it like /model/layers/0/units") from exc
        if not parsed.parts:
            raise SpaceError(pointer, "the empty pointer names the whole request; point into it")
        parent_parts = parsed.parts[:-1]
        try:
            parent = jsonpointer.JsonPointer.from_parts(parent_parts).resolve(base)
        except jsonpointer.JsonPointerException as exc:
            raise SpaceError(pointer, f"base has nothing at {_pointer(parent_parts)} ({exc})") from exc
        last = parsed.parts[-1]
        if isinstance(parent, list):
            if not last.isdigit() or int(last) >= len(parent):
                raise SpaceError(pointer, f"{_pointer(parent_parts)} is a list of {len(parent)}: no index {last}")
        elif not isinstance(parent, dict):
            raise SpaceError(
                pointer,
                f"base has {parent!r} at {_pointer(parent_parts)}, not an object: write it as an object "
                '(e.g. "optimizer": {"type": "Adam"}) to set one of its fields',
            )


def apply(base: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with each pointer of `point` set to its value."""
    request = copy.deepcopy(base)
    for pointer, value in point.items():
        request = jsonpointer.JsonPointer(pointer).set(request, value, inplace=True)
    return request


def corners(space: dict[str, Param]) -> list[dict[str, Any]]:
    """The points checked at submit: each numeric dimension at low and high, each choice."""
    ends = {pointer: _ends(param) for pointer, param in space.items()}
    total = 1
    for values in ends.values():
        total *= len(values)
    if total <= MAX_CORNER_PRODUCT:
        return [dict(zip(ends, combo, strict=True)) for combo in itertools.product(*ends.values())]
    lowest = {pointer: values[0] for pointer, values in ends.items()}
    points = [lowest, {pointer: values[-1] for pointer, values in ends.items()}]
    for pointer, values in ends.items():
        points.extend({**lowest, pointer: value} for value in values[1:])
    return points


def _ends(param: Param) -> list[Any]:
    if param.type is ParamType.CATEGORICAL:
        return list(param.choices or [])
    if param.type is ParamType.INT:
        return sorted({int(param.low or 0), int(param.high or 0)})
    return sorted({float(param.low or 0), float(param.high or 0)})


def _pointer(parts: list[str]) -> str:
    return jsonpointer.JsonPointer.from_parts(parts).path or "(the request)"
