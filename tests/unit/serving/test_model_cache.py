"""The model cache: bounded by count and bytes, one load per version, AVAILABLE once warmed."""

import asyncio
import threading
import time
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
    def __init__(self, nbytes: int = 10, delay: float = 0.0) -> None:
        self.loads: list[int] = []
        self.nbytes = nbytes
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, served: ServedVersion) -> LoadedModel:
        time.sleep(self.delay)
        with self.lock:
            self.loads.append(served.version)
        if served.version == 99:
            raise OSError("artifact missing")
        batcher = Batcher(lambda xs: xs, max_batch_size=4, max_latency_ms=0, max_queued_rows=8, inline=True)
        metrics = VersionMetrics(served.name, served.version)
        return LoadedModel(served, lambda xs: xs, batcher, self.nbytes, 0.0, metrics)


def test_concurrent_requests_for_a_missing_version_wait_for_one_load() -> None:
    loader = Loader(delay=0.05)
    cache = ModelCache(capacity=4, max_bytes=1000, load=loader)

    async def many() -> list[LoadedModel]:
        return await asyncio.gather(*(cache.get(version(1)) for _ in range(10)))

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
    cache = ModelCache(capacity=2, max_bytes=100, load=Loader(delay=0.1))

    async def look() -> tuple[State, State, State]:
        before = cache.state(("m", 1))[0]
        task = asyncio.ensure_future(cache.get(version(1)))
        await asyncio.sleep(0.01)
        during = cache.state(("m", 1))[0]
        await task
        return before, during, cache.state(("m", 1))[0]

    assert asyncio.run(look()) == (State.START, State.LOADING, State.AVAILABLE)


def test_a_version_with_another_path_is_a_different_resolution_but_the_same_key() -> None:
    assert replace(version(1), path=Path("/elsewhere")).key == version(1).key
