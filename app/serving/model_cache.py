"""Loaded, warmed model versions: an LRU bounded by count and bytes, used from the event loop.

Loading and warm-up run in a worker thread; concurrent requests for one missing version wait for
a single load. A version is AVAILABLE only once warmed. Eviction only drops the cache's
reference: requests already holding a model finish on it (its batcher and thread go with the
last reference).
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from app.errors import Unavailable
from app.serving import metrics
from app.serving.batching import Batcher
from app.serving.metrics import VersionMetrics
from app.serving.runtimes import Runtime
from app.serving.signature import ServedVersion

log = logging.getLogger(__name__)

Key = tuple[str, int]
RETRY_FAILED_LOAD_S = 10.0


class State(StrEnum):
    """TensorFlow Serving's version states, as this process sees a version."""

    START = "START"  # registered, not loaded here (loads on first use)
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    END = "END"  # failed to load; see the error


@dataclass
class LoadedModel:
    """A version ready to serve: its runtime warmed and its batcher made."""

    version: ServedVersion
    runtime: Runtime
    batcher: Batcher
    nbytes: int
    load_s: float
    metrics: VersionMetrics = field(repr=False)


@dataclass
class _Failure:
    message: str
    at: float


class ModelCache:
    """LRU of `LoadedModel`s, bounded by `capacity` models and `max_bytes`.

    Args:
        load: makes a LoadedModel (blocking: called in a worker thread).
    """

    def __init__(self, capacity: int, max_bytes: int, load: Callable[[ServedVersion], LoadedModel]) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._load = load
        self._models: OrderedDict[Key, LoadedModel] = OrderedDict()
        self._loading: dict[Key, asyncio.Future[LoadedModel]] = {}
        self._failed: dict[Key, _Failure] = {}
        self.nbytes = 0
        self.evictions = 0

    def peek(self, key: Key) -> LoadedModel | None:
        """The loaded model for `key`, marked as just used; None when not loaded."""
        model = self._models.get(key)
        if model is not None:
            self._models.move_to_end(key)
        return model

    async def get(self, version: ServedVersion) -> LoadedModel:
        """The loaded model of `version`, loading and warming it first if needed."""
        model = self.peek(version.key)
        if model is not None:
            metrics.CACHE_HITS.inc()
            return model
        metrics.CACHE_MISSES.inc()
        return await self.load(version)

    async def load(self, version: ServedVersion) -> LoadedModel:
        key = version.key
        model = self._models.get(key)
        if model is not None:
            return model
        pending = self._loading.get(key)
        if pending is None:
            failure = self._failed.get(key)
            if failure is not None and time.monotonic() - failure.at < RETRY_FAILED_LOAD_S:
                raise Unavailable(failure.message)
            pending = asyncio.get_running_loop().create_future()
            self._loading[key] = pending
            asyncio.get_running_loop().create_task(self._load_into(version, pending))
        return await asyncio.shield(pending)

    async def _load_into(self, version: ServedVersion, pending: asyncio.Future[LoadedModel]) -> None:
        key = version.key
        try:
            model = await asyncio.to_thread(self._load, version)
        except Exception as exc:
            message = (
                f"version {version.version} of model {version.name!r} could not be loaded: {type(exc).__name__}: {exc}"
            )
            log.exception("loading %s v%s failed", version.name, version.version)
            self._failed[key] = _Failure(message, time.monotonic())
            pending.set_exception(Unavailable(message))
            pending.exception()  # retrieved: no "never retrieved" warning when nobody waits
        else:
            self._failed.pop(key, None)
            self._models[key] = model
            self.nbytes += model.nbytes
            self._evict(keep=key)
            metrics.LOAD_SECONDS.observe(model.load_s)
            pending.set_result(model)
        finally:
            self._loading.pop(key, None)
            metrics.CACHE_MODELS.set(len(self._models))
            metrics.CACHE_BYTES.set(self.nbytes)

    def _evict(self, keep: Key) -> None:
        while len(self._models) > 1 and (len(self._models) > self.capacity or self.nbytes > self.max_bytes):
            key = next(iter(self._models))
            if key == keep:
                self._models.move_to_end(key)
                continue
            evicted = self._models.pop(key)
            self.nbytes -= evicted.nbytes
            self.evictions += 1
            metrics.CACHE_EVICTIONS.inc()
            log.info("evicted %s v%s from the model cache", *key)

    def state(self, key: Key) -> tuple[State, str]:
        """This process's view of a version, and the load error if it failed."""
        if key in self._models:
            return State.AVAILABLE, ""
        if key in self._loading:
            return State.LOADING, ""
        failure = self._failed.get(key)
        if failure is not None:
            return State.END, failure.message
        return State.START, ""

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, key: object) -> bool:
        return key in self._models


def warm_up_inputs(version: ServedVersion, rows: int) -> list[np.ndarray]:
    """Zeros of every input for `rows` rows (unknown sizes taken as 1)."""
    return [np.zeros((rows, *[d if d > 0 else 1 for d in spec.shape[1:]]), dtype=spec.dtype) for spec in version.inputs]
