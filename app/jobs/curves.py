"""Pictures of a job's training curves (SVG or PNG): one panel per metric, training against
validation, the attempt boundaries of a resumed job marked.

matplotlib's object API only (no pyplot: no global figure state, safe in the API's thread pool),
on the Agg/SVG canvases, so it needs no display. Imported on the first picture, not at startup.
"""

import hashlib
import io
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

VALIDATION_PREFIX = "val_"
MARKERS_UP_TO = 60  # epochs; past that a dot per epoch is noise, and costs render time


class Format(StrEnum):
    SVG = "svg"
    PNG = "png"

    @property
    def media_type(self) -> str:
        return "image/svg+xml" if self is Format.SVG else "image/png"


@dataclass(frozen=True)
class EpochPoint:
    """One recorded epoch: its number, the attempt that trained it, and its logs."""

    epoch: int
    attempt: int
    logs: dict[str, Any]


def panels(points: Sequence[EpochPoint]) -> list[str]:
    """The metrics to draw, loss first: every numeric log that is not a validation twin."""
    names: list[str] = []
    for point in points:
        for name, value in point.logs.items():
            base = name.removeprefix(VALIDATION_PREFIX)
            if isinstance(value, int | float) and base not in names:
                names.append(base)
    return sorted(names, key=lambda name: (name != "loss", name))


def attempt_boundaries(points: Sequence[EpochPoint]) -> list[tuple[float, int]]:
    """(x, attempt) where the attempt that trained the epochs changes: between two epochs."""
    return [
        (current.epoch - 0.5, current.attempt)
        for previous, current in itertools.pairwise(points)
        if current.attempt != previous.attempt
    ]


def etag(job_id: str, title: str, points: Sequence[EpochPoint], fmt: Format) -> str:
    """Same job, title and epochs, same picture: a client that fetches it on every event gets
    304 Not Modified until an epoch arrives."""
    last = points[-1] if points else None
    key = f"{job_id}|{title}|{fmt}|{len(points)}|{last}"
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


RENDERED_KEPT = 32  # pictures kept by `render_once` (a few hundred kB at most each)
_rendered: OrderedDict[str, bytes] = OrderedDict()
_rendering: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def render_once(key: str, title: str, points: Sequence[EpochPoint], fmt: Format) -> bytes:
    """`render`, shared by every request for the same picture (`key`: its ETag): requests that
    arrive together wait for one render, later ones reuse it. Twenty dashboards watching one job
    all fetch its curves on the same epoch event; without this each paid a render (hundreds of
    ms of CPU), with it the job costs one render per epoch (bench/RESULTS.md "dashboard")."""
    with _guard:
        if key in _rendered:
            _rendered.move_to_end(key)
            return _rendered[key]
        lock = _rendering.setdefault(key, threading.Lock())
    with lock:
        with _guard:
            if key in _rendered:
                return _rendered[key]
        try:
            picture = render(title, points, fmt)
            with _guard:
                _rendered[key] = picture
                while len(_rendered) > RENDERED_KEPT:
                    _rendered.popitem(last=False)
        finally:
            with _guard:
                _rendering.pop(key, None)
    return picture


def render(title: str, points: Sequence[EpochPoint], fmt: Format) -> bytes:
    """The picture of `points` (ordered by epoch) as SVG or PNG bytes."""
    from matplotlib import rcParams
    from matplotlib.figure import Figure

    rcParams["svg.fonttype"] = "none"  # text as text: smaller SVG, no glyph outlines
    names = panels(points) or ["loss"]
    columns = 1 if len(names) == 1 else 2
    rows = math.ceil(len(names) / columns)
    height = 3.0 * rows
    # Fixed margins: matplotlib's constrained layout measures every label first and doubled
    # the render time (bench/curves_render.py).
    figure = Figure(figsize=(5.0 * columns, height), dpi=100)
    figure.subplots_adjust(left=0.09, right=0.98, top=1 - 0.55 / height, bottom=0.5 / height, wspace=0.25, hspace=0.55)
    figure.suptitle(title)
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    epochs = [point.epoch for point in points]
    for index, name in enumerate(names):
        ax = axes[index]
        for key, label, style in ((name, "training", "-"), (VALIDATION_PREFIX + name, "validation", "--")):
            series = [_number(point.logs.get(key)) for point in points]
            if any(value is not None for value in series):
                values = [math.nan if v is None else v for v in series]
                ax.plot(epochs, values, style, marker="." if len(points) <= MARKERS_UP_TO else None, label=label)
        for x, attempt in attempt_boundaries(points):
            ax.axvline(x, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"attempt {attempt}", (x, 1), xycoords=("data", "axes fraction"), fontsize=7, va="top")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        if not points:
            ax.text(0.5, 0.5, "no epoch finished yet", ha="center", va="center", transform=ax.transAxes)
        elif ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper right")  # "best" searches the data: slow
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt.value)
    return buffer.getvalue()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
