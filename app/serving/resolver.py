"""Which version a URL names (`name`, `name/versions/v`, `name/labels/l`), cached briefly.

Predict must not query the database per request, yet a serving process on another machine must
see a new version or a moved label without a restart. Each resolution is trusted for `ttl_s`;
after that the next request still gets the cached answer while one background refresh asks the
database. When the answer changed, the new version is loaded and warmed *before* the cached
resolution switches to it, so no request waits for a load or sees an error during a switch,
and requests already running finish on the old version. If the database is unreachable, the
last known answer keeps serving.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.errors import NotFound
from app.serving.signature import ServedVersion

log = logging.getLogger(__name__)

Selector = tuple[str, int | None, str | None]  # name, version, label
Lookup = Callable[[str, int | None, str | None], ServedVersion]


@dataclass
class _Entry:
    version: ServedVersion
    expires_at: float
    refreshing: bool = False


class Resolver:
    """Cached `Selector` → `ServedVersion`.

    Args:
        lookup: the database query (blocking: run in a worker thread); raises NotFound.
        warm: loads and warms a version before a refreshed resolution points at it.
    """

    def __init__(self, lookup: Lookup, warm: Callable[[ServedVersion], Awaitable[object]], ttl_s: float) -> None:
        self._lookup = lookup
        self._warm = warm
        self.ttl_s = ttl_s
        self._entries: dict[Selector, _Entry] = {}
        self._pending: dict[Selector, asyncio.Future[ServedVersion]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def resolve(self, name: str, version: int | None, label: str | None) -> ServedVersion:
        selector = (name, version, label)
        entry = self._entries.get(selector)
        if entry is not None:
            if not entry.refreshing and time.monotonic() >= entry.expires_at:
                entry.refreshing = True
                task = asyncio.get_running_loop().create_task(self._refresh(selector, entry))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return entry.version
        return await self._first_lookup(selector)

    async def _first_lookup(self, selector: Selector) -> ServedVersion:
        pending = self._pending.get(selector)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = asyncio.get_running_loop().create_future()
        self._pending[selector] = pending
        try:
            found = await asyncio.to_thread(self._lookup, *selector)
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()
            raise
        finally:
            self._pending.pop(selector, None)
        self._entries[selector] = _Entry(found, time.monotonic() + self.ttl_s)
        pending.set_result(found)
        return found

    async def _refresh(self, selector: Selector, entry: _Entry) -> None:
        try:
            found = await asyncio.to_thread(self._lookup, *selector)
            if found != entry.version:
                await self._warm(found)
                log.info(
                    "%s now resolves to version %s (was %s)",
                    _describe(selector),
                    found.version,
                    entry.version.version,
                )
            self._entries[selector] = _Entry(found, time.monotonic() + self.ttl_s)
        except NotFound:
            self._entries.pop(selector, None)  # gone: the next request gets the 404
        except Exception:
            log.exception("refreshing %s failed; serving the last answer", _describe(selector))
            entry.expires_at = time.monotonic() + self.ttl_s
        finally:
            entry.refreshing = False

    def forget(self, name: str) -> None:
        """Drop every cached resolution of `name` (this process just changed its labels)."""
        for selector in [s for s in self._entries if s[0] == name]:
            del self._entries[selector]

    def cached(self, name: str, version: int | None, label: str | None) -> ServedVersion | None:
        entry = self._entries.get((name, version, label))
        return entry.version if entry is not None else None


def _describe(selector: Selector) -> str:
    name, version, label = selector
    if label is not None:
        return f"{name}/labels/{label}"
    return f"{name}/versions/{version}" if version is not None else f"{name} (latest)"
