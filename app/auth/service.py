"""Creating, listing and revoking API keys (for `POST/GET/DELETE /v1/keys` and `trainyard keys`)."""

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import Session

from app.auth import keys, repository
from app.auth.principal import Principal, Scope
from app.db.base import utcnow
from app.errors import NotFound
from app.models import ApiKey


def create_key(
    session: Session, project: str, scopes: Sequence[Scope], name: str = "", expires_in_days: float | None = None
) -> tuple[ApiKey, str]:
    """Store a new key's hash; returns the row and the key (the only time it exists in clear)."""
    key = keys.new_key()
    now = utcnow()
    row = ApiKey(
        name=name,
        project=project,
        scopes=sorted({Scope(s).value for s in scopes}),
        key_hash=keys.key_hash(key),
        prefix=keys.shown_prefix(key),
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days is not None else None,
    )
    session.add(row)
    session.commit()
    return row, key


def list_keys(session: Session, project: str | None) -> Sequence[ApiKey]:
    return repository.list_keys(session, project)


def revoke_key(session: Session, key_id: str, caller: Principal | None = None) -> ApiKey:
    """Revoke (idempotent). `caller`: only keys it may see; None from the command line."""
    row = repository.get(session, key_id)
    if row is None or (caller is not None and not caller.sees(row.project)):
        raise NotFound(f"API key {key_id} does not exist")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row
