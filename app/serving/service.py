"""The serving path: resolve a URL to a version, get it loaded and warmed, run it batched."""

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np

from app.config import Settings
from app.cpu_pool import CpuPool, ProcessPool
from app.errors import BadRequest, NotFound, TooManyRequests, Unavailable
from app.models import ModelVersion
from app.serving import tfserving, v2
from app.serving.batching import Batcher
from app.serving.lookup import served_version
from app.serving.metrics import VersionMetrics
from app.serving.model_cache import LoadedModel, ModelCache, warm_up_inputs
from app.serving.resolver import Lookup, Resolver
from app.serving.runtimes import open_runtime
from app.serving.signature import ServedVersion

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

WARM_UP_REPEATS = 5
# Bodies up to this size are decoded on the event loop (well under a millisecond: a thread hop
# would cost more); larger ones in a pool process, so that one big body never stalls the others.
INLINE_DECODE_BYTES = 64 << 10


class ServingService:
    """One per process. Its coroutines run on the event loop; loads run in worker threads.

    Args:
        lookup: resolves (name, version, label) in the registry (blocking); raises NotFound.
    """

    def __init__(self, settings: Settings, lookup: Lookup, cpu: CpuPool | None = None) -> None:
        self.settings = settings
        self.cpu = cpu or CpuPool(settings.cpu_workers, settings.cpu_queue, settings.cpu_budget_s)
        # Light processes (no Keras: a serving-only process has none; uploads are parsed there
        # too), so a predict never waits behind a spec check.
        self.decoders = ProcessPool(
            settings.cpu_workers, settings.cpu_queue, settings.cpu_budget_s, warm_up="app.warm:light"
        )
        self.cache = ModelCache(settings.model_cache_size, settings.model_cache_bytes, self._load_blocking)
        self.resolver = Resolver(lookup, self.cache.load, settings.resolve_ttl_s)

    async def model(
        self, name: str, version: int | None = None, label: str | None = None, project: str | None = None
    ) -> LoadedModel:
        """The loaded model a URL names (NotFound, or Unavailable if it cannot load).

        Args:
            project: the caller's project; another project's model is NotFound (None: any).
        """
        served = await self.resolve(name, version, label, project)
        return await self.cache.get(served)

    async def resolve(
        self, name: str, version: int | None = None, label: str | None = None, project: str | None = None
    ) -> ServedVersion:
        served = await self.resolver.resolve(name, version, label)
        if project is not None and served.project != project:
            raise NotFound(f"model {name!r} does not exist")  # as if it did not: no tenancy leak
        return served

    async def warm(self, served: ServedVersion) -> LoadedModel:
        """Load and warm `served` now (before a label points at it)."""
        return await self.cache.load(served)

    async def try_load(self, name: str, version: int | None = None, label: str | None = None) -> None:
        """Load what a URL names if it is not loaded; a failure shows in `states` (END)."""
        with contextlib.suppress(Unavailable):
            await self.model(name, version, label)

    def forget(self, name: str) -> None:
        """Re-resolve `name`'s URLs on their next request (its labels just changed here)."""
        self.resolver.forget(name)

    def describe(self, row: ModelVersion) -> ServedVersion:
        return served_version(row, self.settings.artifacts_dir)

    def states(self, rows: Sequence[ModelVersion]) -> dict[int, tuple[str, str]]:
        """This process's state of each version, with the load error of a failed one."""
        states = {}
        for row in rows:
            state, error = self.cache.state((row.name, row.version))
            states[row.version] = (state.value, error)
        return states

    async def predict_tfserving(self, model: LoadedModel, raw: bytes) -> bytes:
        """A TF Serving predict body in, the response body out (row or columnar format)."""
        started = time.perf_counter()
        try:
            max_rows = self.settings.max_predict_rows
            inputs, rows, class_names = await self._decode(raw, tfserving.decode_request, model.version, max_rows)
            outputs = await self.predict(model, inputs)
            body = tfserving.encode_predict(outputs, model.version, rows, class_names)
        except BaseException as exc:
            model.metrics.request("tfserving", _outcome(exc))
            raise
        model.metrics.request("tfserving", "ok")
        model.metrics.latency.observe(time.perf_counter() - started)
        return body

    async def infer_v2(self, model: LoadedModel, raw: bytes, header_length: str | None) -> tuple[bytes, int | None]:
        """An Open Inference Protocol infer body in; the response and its JSON header length."""
        started = time.perf_counter()
        try:
            request = await self._decode(
                raw, v2.decode_infer, header_length, model.version, self.settings.max_predict_rows
            )
            outputs = await self.predict(model, request.inputs)
            response = v2.encode_infer(request, outputs, model.version)
        except BaseException as exc:
            model.metrics.request("v2", _outcome(exc))
            raise
        model.metrics.request("v2", "ok")
        model.metrics.latency.observe(time.perf_counter() - started)
        return response

    async def _decode(
        self, raw: bytes, decode: Callable[Concatenate[bytes, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`decode(raw, ...)`: on the event loop for a small body; a large one in a pool process,
        waited for by a CPU pool thread (which bounds how many wait), so that parsing a 4 MiB
        body holds neither the event loop nor this process's GIL."""
        if len(raw) <= INLINE_DECODE_BYTES:
            return decode(raw, *args, **kwargs)
        what = "decoding of large predict bodies"
        return await self.cpu.run(what, self.decoders.call, self.cpu.budget_s, what, decode, raw, *args, **kwargs)

    async def predict(self, model: LoadedModel, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run one request's batch through the model's batcher: outputs in signature order."""
        rows = {int(a.shape[0]) for a in inputs}
        if len(rows) != 1:
            raise BadRequest(f"every input must have the same number of rows; got {sorted(rows)}")
        if 0 in rows:
            raise BadRequest("the request has no rows to predict")
        return await model.batcher.submit(inputs)

    def _load_blocking(self, served: ServedVersion) -> LoadedModel:
        started = time.perf_counter()
        runtime = open_runtime(served)
        batching = self.settings.batching_for(served.name)
        assert batching.max_batch_size is not None and batching.max_latency_ms is not None
        assert batching.max_queued_rows is not None
        # Warm-up: the first calls allocate and (for Keras) trace; time the full batch to decide
        # whether inference is cheap enough to run on the event loop.
        runtime.run(warm_up_inputs(served, 1))
        full = warm_up_inputs(served, batching.max_batch_size)
        best = float("inf")
        for _ in range(WARM_UP_REPEATS):
            t0 = time.perf_counter()
            runtime.run(full)
            best = min(best, time.perf_counter() - t0)
        inline = best * 1000 <= self.settings.inline_inference_max_ms
        version_metrics = VersionMetrics(served.name, served.version)
        batcher = Batcher(
            runtime.run,
            max_batch_size=batching.max_batch_size,
            max_latency_ms=batching.max_latency_ms,
            max_queued_rows=batching.max_queued_rows,
            inline=inline,
            on_batch=version_metrics.batch_rows.observe,
        )
        nbytes = served.path.stat().st_size
        load_s = time.perf_counter() - started
        log.info(
            "loaded %s v%s (%s, %d bytes) in %.3f s; a batch of %d takes %.3f ms, run %s",
            served.name,
            served.version,
            served.runtime,
            nbytes,
            load_s,
            batching.max_batch_size,
            best * 1000,
            "inline" if inline else "in a thread",
        )
        return LoadedModel(served, runtime, batcher, nbytes, load_s, version_metrics)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, TooManyRequests):
        return "overloaded"
    return "client_error" if isinstance(exc, BadRequest) else "error"
