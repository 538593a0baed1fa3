"""`:explain` in the serving process: the version's Keras model, loaded on demand.

A serving process may hold only the ONNX export of a version, which has no gradients. Explain
loads the version's `.keras` artifact itself (Keras is imported then, not before: an ONNX-only
serving process that is never asked to explain never imports it), keeps the last few loaded,
and runs everything on the bounded CPU pool (app/cpu_pool.py) under its own time budget, so
explanations never hold the event loop and never outnumber the pool's threads.
"""

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from app.config import Settings
from app.cpu_pool import CpuPool
from app.errors import BadRequest, InvalidInput, PayloadTooLarge, Unavailable
from app.explain.schemas import ExplainRequest, ExplainResponse, Explanation
from app.serving.columns import encode_rows, wants_column_encoding
from app.serving.signature import ServedVersion, cast_numbers, numbers, to_input_array


class Explainer:
    """One per process; `explain` is called from the event loop."""

    def __init__(self, settings: Settings, cpu: CpuPool) -> None:
        self.settings = settings
        self.cpu = cpu
        self._models: OrderedDict[tuple[str, int], Any] = OrderedDict()  # LRU of `Explainable`s
        self._lock = threading.Lock()  # one load at a time: two would double the memory

    async def explain(self, served: ServedVersion, request: ExplainRequest) -> ExplainResponse:
        """Check the request's size, then explain it on the CPU pool."""
        steps = request.steps if request.method == "integrated_gradients" else 1
        if steps > self.settings.explain_max_steps:
            raise InvalidInput(f"steps: at most {self.settings.explain_max_steps}; got {request.steps}")
        points = len(request.instances) * steps
        if points > self.settings.explain_max_points:
            raise PayloadTooLarge(
                f"instances x steps is {len(request.instances)} x {steps} = {points}, beyond the limit of "
                f"{self.settings.explain_max_points} (TRAINYARD_EXPLAIN_MAX_POINTS): send fewer instances or steps"
            )
        return await self.cpu.run_for(
            self.settings.explain_budget_s, "explanations", self._explain_blocking, served, request
        )

    def _explain_blocking(self, served: ServedVersion, request: ExplainRequest) -> ExplainResponse:
        from app.ml import attributions  # Keras: imported on the first explanation

        explainable = self._explainable(served)
        rows, keyed = self._rows(served, request.instances)
        baseline = self._baseline(served, request.baseline, rows)
        for name, array in (("instances", rows), ("baseline", baseline)):
            if not np.isfinite(array).all():  # gradients of NaN or infinity are no explanation
                raise BadRequest(f"{name}: explain takes finite numbers only (no NaN or Infinity)")
        inputs = [rows, *attributions.one_hots(explainable, rows)]
        baselines = [baseline, *attributions.one_hots(explainable, baseline)]
        if request.baseline is None or isinstance(request.baseline, int | float):
            # No category at all at a plain baseline (its codes would name the first category).
            baselines[1:] = [np.zeros_like(b) for b in baselines[1:]]
        try:
            result = attributions.explain(explainable, inputs, baselines, request.method, request.target, request.steps)
        except attributions.NotExplainable as exc:
            raise InvalidInput(str(exc)) from None
        finite = [np.isfinite(result.outputs), np.isfinite(result.values)]
        if result.deltas is not None:
            finite.append(np.isfinite(result.deltas))
        if not all(f.all() for f in finite):
            raise InvalidInput("the model's outputs or gradients are not finite at these instances (overflow)")
        names = [c.name for c in served.columns] if served.columns else []
        explanations = [
            Explanation(
                method=request.method,
                target=int(result.targets[i]),
                attributions=dict(zip(names, result.values[i].tolist(), strict=True))
                if keyed[i]
                else result.values[i].tolist(),
                convergence_delta=float(result.deltas[i]) if result.deltas is not None else None,
            )
            for i in range(len(rows))
        ]
        return ExplainResponse(predictions=result.outputs.tolist(), explanations=explanations)

    def _rows(self, served: ServedVersion, instances: list[Any]) -> tuple[np.ndarray, list[bool]]:
        """The instances as the model's input batch; which were objects keyed by column."""
        if len(instances) > self.settings.max_predict_rows:
            raise PayloadTooLarge(f"instances: at most {self.settings.max_predict_rows} rows; got {len(instances)}")
        spec = served.inputs[0]
        if served.columns and wants_column_encoding(instances, [spec.name]):
            return encode_rows(instances, served.columns), [isinstance(i, dict) for i in instances]
        return to_input_array(spec, instances, "instances").astype("float32"), [False] * len(instances)

    def _baseline(self, served: ServedVersion, value: Any, rows: np.ndarray) -> np.ndarray:
        """One baseline row shaped like an instance: zeros, a number, a raw row or an array."""
        if value is None:
            return np.zeros((1, *rows.shape[1:]), dtype="float32")
        if isinstance(value, int | float) and not isinstance(value, bool):
            filled = cast_numbers(numbers(value, "baseline"), np.dtype("float32"), "baseline")
            return np.full((1, *rows.shape[1:]), filled, dtype="float32")
        if served.columns and wants_column_encoding([value], [served.inputs[0].name]):
            return encode_rows([value], served.columns)
        array = cast_numbers(numbers(value, "baseline"), np.dtype("float32"), "baseline")
        if array.shape != rows.shape[1:]:
            raise InvalidInput(
                f"baseline: must have an instance's shape {list(rows.shape[1:])}; got {list(array.shape)}"
            )
        return array[None]

    def _explainable(self, served: ServedVersion) -> Any:
        from app.ml.attributions import NotExplainable, load_explainable

        with self._lock:
            found = self._models.get(served.key)
            if found is not None:
                self._models.move_to_end(served.key)
                return found
            if served.artifact is None or not served.artifact.is_file():
                raise Unavailable(f"the Keras artifact of {served.name} version {served.version} is missing")
            try:
                found = load_explainable(served.artifact)
            except NotExplainable as exc:
                raise InvalidInput(str(exc)) from None
            self._models[served.key] = found
            while len(self._models) > self.settings.explain_cache_size:
                self._models.popitem(last=False)
            return found
