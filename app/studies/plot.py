"""The picture of a study (SVG): the objective per trial with the best so far, and a
parallel-coordinates view of the parameters coloured by the objective.

The same matplotlib setup as the job curves (app.jobs.curves): the object API on the SVG canvas,
no pyplot, imported on the first picture."""

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.studies.schemas import Param, ParamType

STATUS_STYLE = {"succeeded": ("o", "tab:blue"), "pruned": ("x", "tab:orange")}


@dataclass(frozen=True)
class TrialPoint:
    number: int
    status: str
    value: float | None
    params: dict[str, Any]


def render(title: str, metric: str, maximize: bool, space: dict[str, Param], points: Sequence[TrialPoint]) -> bytes:
    from matplotlib import colormaps, rcParams
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    rcParams["svg.fonttype"] = "none"
    figure = Figure(figsize=(11.0, 4.0), dpi=100)
    figure.subplots_adjust(left=0.07, right=0.97, top=0.86, bottom=0.2, wspace=0.25)
    figure.suptitle(title)
    trials_ax, params_ax = figure.subplots(1, 2)
    valued = [p for p in points if p.value is not None]
    for status, (marker, color) in STATUS_STYLE.items():
        shown = [p for p in valued if p.status == status]
        if shown:
            trials_ax.scatter([p.number for p in shown], [p.value for p in shown], marker=marker, c=color, label=status)
    done = sorted((p for p in valued if p.status == "succeeded"), key=lambda p: p.number)
    if done:
        best: list[float] = []
        for p in done:
            value = float(p.value or 0.0)
            best.append(value if not best else (max if maximize else min)(best[-1], value))
        trials_ax.step([p.number for p in done], best, where="post", color="tab:green", label="best so far")
    trials_ax.set_xlabel("trial")
    trials_ax.set_ylabel(metric)
    trials_ax.set_title(f"{metric} per trial ({'higher' if maximize else 'lower'} is better)")
    if trials_ax.get_legend_handles_labels()[0]:
        trials_ax.legend(fontsize=8, loc="lower right" if maximize else "upper right")
    if not valued:
        trials_ax.text(0.5, 0.5, "no trial finished yet", ha="center", va="center", transform=trials_ax.transAxes)
    _parallel_coordinates(params_ax, space, valued, colormaps["viridis"], Normalize)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()


def _parallel_coordinates(ax: Any, space: dict[str, Param], points: Sequence[TrialPoint], cmap: Any, norm: Any) -> None:
    """One vertical axis per parameter, each scaled to 0..1 (log where the parameter is log;
    choices evenly spaced); a line per trial, coloured by its value."""
    pointers = list(space)
    ax.set_title("parameters (colour: objective)")
    ax.set_xticks(range(len(pointers)), [p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1] for p in pointers])
    ax.tick_params(axis="x", labelsize=7, rotation=15)
    ax.set_yticks([])
    for x in range(len(pointers)):
        ax.axvline(x, color="grey", linewidth=0.8)
    if not points:
        return
    values = [float(p.value or 0.0) for p in points]
    scale = norm(vmin=min(values), vmax=max(values) if max(values) > min(values) else min(values) + 1)
    for point, value in zip(points, values, strict=True):
        ys = [_position(space[p], point.params.get(p)) for p in pointers]
        dashed = point.status != "succeeded"
        ax.plot(range(len(pointers)), ys, color=cmap(scale(value)), linestyle="--" if dashed else "-", alpha=0.8)
    for x, pointer in enumerate(pointers):
        low, high = _labels(space[pointer])
        ax.annotate(low, (x, 0), fontsize=6, ha="center", va="top", xytext=(0, -2), textcoords="offset points")
        ax.annotate(high, (x, 1), fontsize=6, ha="center", va="bottom", xytext=(0, 2), textcoords="offset points")


def _position(param: Param, value: Any) -> float:
    if param.type is ParamType.CATEGORICAL:
        choices = list(param.choices or [])
        return choices.index(value) / max(len(choices) - 1, 1) if value in choices else math.nan
    if not isinstance(value, int | float):
        return math.nan
    low, high = float(param.low or 0), float(param.high or 0)
    if high == low:
        return 0.5
    if param.log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (float(value) - low) / (high - low)


def _labels(param: Param) -> tuple[str, str]:
    if param.type is ParamType.CATEGORICAL:
        choices = list(param.choices or [])
        return str(choices[0]), str(choices[-1])
    return f"{param.low:g}", f"{param.high:g}"
