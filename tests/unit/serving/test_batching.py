"""Dynamic batching: concurrent requests share inference calls and get their own rows back."""

import asyncio
import threading

import numpy as np
import pytest

from app.errors import TooManyRequests
from app.serving.batching import Batcher

WEIGHTS = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)


class CountingModel:
    """A tiny linear model that records the size of each call."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.calls.append(len(inputs[0]))
        self.threads.add(threading.current_thread().name)
        x = inputs[0]
        return [x @ WEIGHTS, x.sum(axis=1, keepdims=True)]


def requests(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(1 + i % 4, 5)).astype(np.float32) for i in range(count)]


async def submit_all(batcher: Batcher, batches: list[np.ndarray]) -> list[list[np.ndarray]]:
    return await asyncio.gather(*(batcher.submit([x]) for x in batches))


@pytest.mark.parametrize("inline", [True, False])
def test_concurrent_requests_are_batched_and_each_gets_its_unbatched_result(inline: bool) -> None:
    model = CountingModel()
    batcher = Batcher(model.run, max_batch_size=16, max_latency_ms=0, max_queued_rows=1000, inline=inline)
    inputs = requests(40)

    results = asyncio.run(submit_all(batcher, inputs))

    assert len(model.calls) < len(inputs)  # batched
    assert max(model.calls) <= 16
    for x, (scores, total) in zip(inputs, results, strict=True):
        np.testing.assert_allclose(scores, x @ WEIGHTS, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(total, x.sum(axis=1, keepdims=True), rtol=1e-6, atol=1e-6)
    assert ("MainThread" in model.threads) is inline


def test_a_lone_request_runs_at_once_without_waiting_for_company() -> None:
    model = CountingModel()
    batcher = Batcher(model.run, max_batch_size=64, max_latency_ms=0, max_queued_rows=1000, inline=True)
    x = requests(1)[0]

    ((scores, _),) = [asyncio.run(batcher.submit([x]))]

    assert model.calls == [len(x)]
    np.testing.assert_allclose(scores, x @ WEIGHTS, rtol=1e-5, atol=1e-6)


def test_max_latency_holds_a_batch_open_until_it_fills() -> None:
    model = CountingModel()
    # A minute's window: the first request can only have company if the batch waits for it,
    # and the batch runs as soon as it is full, long before the window ends.
    batcher = Batcher(model.run, max_batch_size=3, max_latency_ms=60_000, max_queued_rows=1000, inline=True)

    async def staggered() -> None:
        first = asyncio.ensure_future(batcher.submit([np.ones((1, 5), np.float32)]))
        for _ in range(1000):  # until the first request waits in the queue
            await asyncio.sleep(0)
            if batcher.queued_rows == 1:
                break
        assert model.calls == [] and batcher.queued_rows == 1
        await asyncio.wait_for(asyncio.gather(first, batcher.submit([np.ones((2, 5), np.float32)])), timeout=10)

    asyncio.run(staggered())

    assert model.calls == [3]


def test_a_full_queue_answers_429_with_retry_after() -> None:
    model = CountingModel()
    batcher = Batcher(model.run, max_batch_size=4, max_latency_ms=0, max_queued_rows=8, inline=True)

    async def flood() -> list[object]:
        return await asyncio.gather(
            *(batcher.submit([np.ones((3, 5), np.float32)]) for _ in range(5)),
            return_exceptions=True,
        )

    outcomes = asyncio.run(flood())

    refused = [o for o in outcomes if isinstance(o, TooManyRequests)]
    # The first runs at once; 3 + 3 more rows fit in the queue of 8; the rest are refused.
    assert len(refused) == 2
    assert refused[0].status_code == 429 and refused[0].headers == {"Retry-After": "1"}


def test_a_failing_batch_fails_its_requests_and_the_next_batch_runs() -> None:
    calls: list[int] = []

    def flaky(inputs: list[np.ndarray]) -> list[np.ndarray]:
        calls.append(len(inputs[0]))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [inputs[0] * 2]

    batcher = Batcher(flaky, max_batch_size=2, max_latency_ms=0, max_queued_rows=100, inline=True)

    async def run() -> list[object]:
        return await asyncio.gather(
            *(batcher.submit([np.full((1, 1), i, np.float32)]) for i in range(4)),
            return_exceptions=True,
        )

    first, second, third, fourth = asyncio.run(run())

    # The first request ran alone (and failed); the other three ran as one batch.
    assert isinstance(first, RuntimeError) and calls == [1, 2, 1]
    assert [o[0].item() for o in (second, third, fourth)] == [2.0, 4.0, 6.0]  # type: ignore[index]
