"""The model cache: bounded by count and bytes, one load per version, AVAILABLE once warmed."""

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.errors import Unavailable
from app.serving.batching import Batcher
from app.serving.metrics import VersionMetrics
from app.serving.model_cache import LoadedModel, ModelCache, State
from app.serving.signature import ServedVersion, TensorSpec

SPEC = TensorSpec("x", np.dtype("float32"), (-1, 2))


def version(number: int, name: str = "m") -> ServedVersion:
    return ServedVersion(name, number, "onnx", Path(f"/nowhere/{number}"), (SPEC,), (SPEC,))


class Loader:
    """Makes a LoadedModel per call; with `gated`, each load starts (sets `started`) and then
    waits for `release`, so a test can look at the cache while a load is in progress."""

    def __init__(self, nbytes: int = 10, gated: bool = False) -> None:
        self.loads: list[int] = []
        self.nbytes = nbytes
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.release = threading.Event()
        if not gated:
            self.release.set()

    def __call__(self, served: ServedVersion) -> LoadedModel:
        self.started.set()
        assert self.release.wait(timeout=10), "the test never released the load"
        with self.lock:
            self.loads.append(served.version)
        if served.version == 99:
            raise OSError("artifact missing")
        batcher = Batcher(lambda xs: xs, max_batch_size=4, max_latency_ms=0, max_queued_rows=8, inline=True)
        metrics = VersionMetrics(served.name, served.version)
        return LoadedModel(served, lambda xs: xs, batcher, self.nbytes, 0.0, metrics)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop until `condition` holds (a bounded wait, not a fixed sleep)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


def test_concurrent_requests_for_a_missing_version_wait_for_one_load() -> None:
    loader = Loader(gated=True)
    cache = ModelCache(capacity=4, max_bytes=1000, load=loader)

    async def many() -> list[LoadedModel]:
        requests = [asyncio.ensure_future(cache.get(version(1))) for _ in range(10)]
        await until(loader.started.is_set, "the load to start")  # every request is now waiting
        loader.release.set()
        return await asyncio.gather(*requests)

    models = asyncio.run(many())

    assert loader.loads == [1]
    assert all(m is models[0] for m in models)
    assert cache.state(version(1).key) == (State.AVAILABLE, "")


def test_the_least_recently_used_version_goes_when_the_count_is_exceeded() -> None:
    cache = ModelCache(capacity=2, max_bytes=1000, load=Loader())

    async def use() -> None:
        await cache.get(version(1))
        await cache.get(version(2))
        await cache.get(version(1))  # 2 is now the least recently used
        await cache.get(version(3))

    asyncio.run(use())

    assert (("m", 1) in cache, ("m", 2) in cache, ("m", 3) in cache) == (True, False, True)
    assert cache.evictions == 1 and cache.state(("m", 2)) == (State.START, "")


def test_the_byte_bound_evicts_too() -> None:
    cache = ModelCache(capacity=10, max_bytes=25, load=Loader(nbytes=10))

    async def use() -> None:
        for number in (1, 2, 3):
            await cache.get(version(number))

    asyncio.run(use())

    assert len(cache) == 2 and cache.nbytes == 20 and ("m", 1) not in cache


def test_a_version_that_fails_to_load_is_unavailable_with_the_reason() -> None:
    cache = ModelCache(capacity=2, max_bytes=100, load=Loader())

    with pytest.raises(Unavailable, match="artifact missing"):
        asyncio.run(cache.get(version(99)))

    state, error = cache.state(("m", 99))
    assert state == State.END and "artifact missing" in error


def test_states_while_loading() -> None:
    loader = Loader(gated=True)
    cache = ModelCache(capacity=2, max_bytes=100, load=loader)

    async def look() -> tuple[State, State, State]:
        before = cache.state(("m", 1))[0]
        task = asyncio.ensure_future(cache.get(version(1)))
        await until(loader.started.is_set, "the load to start")
        during = cache.state(("m", 1))[0]
        loader.release.set()
        await task
        return before, during, cache.state(("m", 1))[0]

    assert asyncio.run(look()) == (State.START, State.LOADING, State.AVAILABLE)


def test_a_version_at_another_path_is_served_from_the_cache_without_a_second_load() -> None:
    # A resolution may differ (its artifact path moved, say) while naming the same version: the
    # resolver sees a change, but the cache must not load or hold the version twice.
    loader = Loader()
    cache = ModelCache(capacity=4, max_bytes=1000, load=loader)
    moved = replace(version(1), path=Path("/elsewhere"))

    async def both() -> tuple[LoadedModel, LoadedModel]:
        return await cache.get(version(1)), await cache.get(moved)

    first, second = asyncio.run(both())

    assert moved != version(1)
    assert second is first and loader.loads == [1] and len(cache) == 1
