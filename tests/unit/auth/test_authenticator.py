"""The key cache: one read for many concurrent first requests, a stale row served while one
background re-read runs, and what that re-read finds (a revocation) used from then on."""

import asyncio

import pytest
from sqlalchemy import update

from app.auth import service
from app.auth.authenticator import Authenticator
from app.auth.principal import Scope
from app.config import Settings
from app.db.base import utcnow
from app.db.migrate import upgrade_to_head
from app.db.session import session_scope
from app.errors import Unauthorized
from app.models import ApiKey


def new_key(settings: Settings) -> str:
    upgrade_to_head(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        return service.create_key(session, "alpha", [Scope.READ])[1]


def test_concurrent_first_requests_share_one_read(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key(settings)
    authenticator = Authenticator(settings.model_copy(update={"key_cache_s": 3600.0}), required=True)
    reads = []
    fetch = authenticator._fetch
    monkeypatch.setattr(authenticator, "_fetch", lambda hashed: reads.append(hashed) or fetch(hashed))

    async def many() -> list[str]:
        found = await asyncio.gather(*(authenticator.principal(f"Bearer {key}") for _ in range(32)))
        return [p.project for p in found]

    assert asyncio.run(many()) == ["alpha"] * 32
    assert len(reads) == 1


def test_a_stale_row_serves_while_one_re_read_finds_the_revocation(settings: Settings) -> None:
    key = new_key(settings)
    authenticator = Authenticator(settings.model_copy(update={"key_cache_s": 3600.0}), required=True)
    header = f"Bearer {key}"

    async def scenario() -> None:
        await authenticator.principal(header)
        with session_scope(settings.sqlalchemy_url) as session:
            session.execute(update(ApiKey).values(revoked_at=utcnow()))
        for hashed, entry in authenticator._entries.items():  # the period has passed
            authenticator._entries[hashed] = type(entry)(entry.principal, entry.revoked, entry.fetched_at - 7200)

        assert (await authenticator.principal(header)).project == "alpha"  # the row read before
        await asyncio.gather(*authenticator._tasks)
        with pytest.raises(Unauthorized, match="revoked"):
            await authenticator.principal(header)

    asyncio.run(scenario())


def test_no_header_or_another_scheme_is_refused(settings: Settings) -> None:
    new_key(settings)
    authenticator = Authenticator(settings, required=True)

    for header in (None, "", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer ty_unknown"):
        with pytest.raises(Unauthorized):
            asyncio.run(authenticator.principal(header))
