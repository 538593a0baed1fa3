"""Bearer key → `Principal`, cached per process so that auth costs predict almost nothing.

A key's row is trusted for `TRAINYARD_KEY_CACHE_S`: a request within that period costs a
SHA-256 and a dict lookup. The first request after it starts one background re-read of the row
(which writes the key's `last_used_at` in the same transaction, so a busy key costs one small
write per period, not one per request) and, like the requests until that read is back, uses the
row read before: no request waits on the database for a key it has seen, and 64 concurrent
requests do not make 64 reads. Revoking a key therefore takes effect in every process within
about that period (at once in the process that revoked it).
"""

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass

from app.auth import keys, repository
from app.auth.limits import RateLimiter
from app.auth.principal import LOCAL_USER, Principal, Scope
from app.config import Settings
from app.db.base import utcnow
from app.db.session import session_scope
from app.errors import Unauthorized

log = logging.getLogger(__name__)

# Unknown keys are cached too (a client retrying with a wrong key must not cost a query per
# request); past this many entries the cache starts over rather than grow without bound.
MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True)
class _Entry:
    principal: Principal | None  # None: no key has this hash
    revoked: bool
    fetched_at: float


class Authenticator:
    """One per process: who a request's `Authorization` header is, and its rate limits.

    Args:
        required: whether requests need a key (TRAINYARD_AUTH and the listening addresses);
            when not, every request is the local user (every scope, project "default").
    """

    def __init__(self, settings: Settings, required: bool) -> None:
        self.required = required
        self.settings = settings
        self.limiter = RateLimiter(settings)
        self._entries: dict[str, _Entry] = {}
        self._pending: dict[str, asyncio.Future[_Entry]] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def principal(self, authorization: str | None) -> Principal:
        """The caller; Unauthorized (401) for a missing, unknown, revoked or expired key."""
        if not self.required:
            return LOCAL_USER
        key = keys.bearer_key(authorization)
        if key is None:
            raise Unauthorized("this request needs an API key: send 'Authorization: Bearer <key>'")
        hashed = keys.key_hash(key)
        entry = self._entries.get(hashed)
        if entry is None:
            entry = await self._first_fetch(hashed)
        elif time.monotonic() - entry.fetched_at >= self.settings.key_cache_s:
            if self.settings.key_cache_s == 0:
                entry = await self._first_fetch(hashed)
            elif hashed not in self._refreshing:
                # One background re-read per key; meanwhile requests use the row read last.
                self._refreshing.add(hashed)
                task = asyncio.get_running_loop().create_task(self._refresh(hashed))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        if entry.principal is None:
            raise Unauthorized("the API key is not valid")
        if entry.revoked:
            raise Unauthorized("the API key was revoked")
        expires_at = entry.principal.expires_at
        if expires_at is not None and expires_at <= utcnow():
            raise Unauthorized("the API key has expired")
        return entry.principal

    async def _first_fetch(self, hashed: str) -> _Entry:
        """Read a key's row; concurrent first requests with one key share the read."""
        pending = self._pending.get(hashed)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = asyncio.get_running_loop().create_future()
        self._pending[hashed] = pending
        try:
            entry = await asyncio.to_thread(self._fetch, hashed)
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: no "never retrieved" warning when no one waits
            raise
        finally:
            self._pending.pop(hashed, None)
        self._store(hashed, entry)
        pending.set_result(entry)
        return entry

    async def _refresh(self, hashed: str) -> None:
        try:
            self._store(hashed, await asyncio.to_thread(self._fetch, hashed))
        except Exception:
            log.exception("re-reading an API key failed; using the row read before")
        finally:
            self._refreshing.discard(hashed)

    def _store(self, hashed: str, entry: _Entry) -> None:
        if len(self._entries) >= MAX_CACHED_KEYS:
            self._entries.clear()
        self._entries[hashed] = entry

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (it was just revoked here: refuse it at once)."""
        for hashed in [h for h, e in self._entries.items() if e.principal and e.principal.key_id == key_id]:
            del self._entries[hashed]

    def _fetch(self, hashed: str) -> _Entry:
        with session_scope(self.settings.sqlalchemy_url) as session:
            row = repository.by_hash(session, hashed)
            # The lookup used the hash as an index key; compare again in constant time anyway.
            if row is None or not hmac.compare_digest(row.key_hash, hashed):
                return _Entry(None, False, time.monotonic())
            principal = Principal(
                key_id=row.id,
                project=row.project,
                scopes=frozenset(Scope(s) for s in row.scopes),
                expires_at=row.expires_at,
            )
            revoked = row.revoked_at is not None
            if not revoked:
                repository.touch(session, row.id, utcnow())
                session.commit()
            return _Entry(principal, revoked, time.monotonic())
