"""Resolution caching: no database per request, new versions warmed before they serve."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.errors import NotFound
from app.serving.resolver import Resolver
from app.serving.signature import ServedVersion, TensorSpec

SPEC = TensorSpec("x", np.dtype("float32"), (-1, 2))


def version(number: int) -> ServedVersion:
    return ServedVersion("m", number, "onnx", Path(f"/v/{number}"), (SPEC,), (SPEC,))


class Registry:
    def __init__(self) -> None:
        self.latest = 1
        self.lookups = 0
        self.down = False

    def lookup(self, name: str, number: int | None, label: str | None) -> ServedVersion:
        self.lookups += 1
        if self.down:
            raise ConnectionError("database unreachable")
        if name != "m":
            raise NotFound(f"model {name!r} does not exist")
        return version(number or self.latest)


def test_within_the_ttl_requests_do_not_query_the_registry() -> None:
    registry = Registry()
    resolver = Resolver(registry.lookup, _no_warm, ttl_s=60)

    async def many() -> list[ServedVersion]:
        return [await resolver.resolve("m", None, None) for _ in range(100)]

    assert {v.version for v in asyncio.run(many())} == {1}
    assert registry.lookups == 1


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop until `condition` holds (a bounded wait, not a fixed sleep)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


def test_after_the_ttl_a_new_version_is_warmed_before_requests_switch_to_it() -> None:
    registry = Registry()
    warmed: list[int] = []
    seen_while_warming: list[int] = []
    resolver: Resolver

    async def warm(served: ServedVersion) -> None:
        seen_while_warming.append((await resolver.resolve("m", None, None)).version)
        warmed.append(served.version)

    resolver = Resolver(registry.lookup, warm, ttl_s=0)  # every answer is stale at once

    async def scenario() -> list[int]:
        first = await resolver.resolve("m", None, None)
        registry.latest = 2
        stale = await resolver.resolve("m", None, None)  # answers at once, refreshes behind
        await until(lambda: resolver.cached("m", None, None) == version(2), "the switch to version 2")
        return [first.version, stale.version, (await resolver.resolve("m", None, None)).version]

    assert asyncio.run(scenario()) == [1, 1, 2]
    assert warmed == [2] and seen_while_warming == [1]


def test_an_unreachable_registry_keeps_the_last_answer_and_refreshes_once_it_is_back() -> None:
    registry = Registry()
    resolver = Resolver(registry.lookup, _no_warm, ttl_s=0)  # every answer is stale at once

    async def requests_until(condition: Callable[[], bool], what: str) -> set[int]:
        """Keep resolving, as a stream of requests would, until `condition`; the versions served."""
        served = set()
        for _ in range(10_000):
            served.add((await resolver.resolve("m", None, None)).version)
            if condition():
                return served
            await asyncio.sleep(0.001)
        raise AssertionError(f"timed out waiting for {what}")

    async def scenario() -> tuple[set[int], int]:
        await resolver.resolve("m", None, None)
        registry.down = True
        # Stale requests keep retrying the refresh (three failed lookups), and get version 1.
        while_down = await requests_until(lambda: registry.lookups >= 4, "three failed refreshes")
        registry.down, registry.latest = False, 2
        await requests_until(lambda: resolver.cached("m", None, None) == version(2), "a refresh")
        return while_down, (await resolver.resolve("m", None, None)).version

    assert asyncio.run(scenario()) == ({1}, 2)


def test_an_unknown_model_is_not_found_every_time() -> None:
    resolver = Resolver(Registry().lookup, _no_warm, ttl_s=60)

    async def scenario() -> list[str]:
        errors = []
        for _ in range(2):
            try:
                await resolver.resolve("other", None, None)
            except NotFound as exc:
                errors.append(exc.message)
        return errors

    assert asyncio.run(scenario()) == ["model 'other' does not exist"] * 2


async def _no_warm(served: ServedVersion) -> None:
    return None
