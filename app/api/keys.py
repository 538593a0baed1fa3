"""/v1/keys: create (the key is in the answer, once), list and revoke API keys; admin scope."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from app.api.deps import SessionDep, SettingsDep
from app.auth import service
from app.auth.authenticator import Authenticator
from app.auth.deps import AdminKey
from app.auth.schemas import KeyCreate, KeyCreated, KeyList, KeyOut

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(body: KeyCreate, session: SessionDep, settings: SettingsDep, principal: AdminKey) -> KeyCreated:
    """A new key for `project` with `scopes`; the answer's `key` is its only copy."""
    row, key = service.create_key(session, body.project, body.scopes, body.name, body.expires_in_days)
    return KeyCreated(**KeyOut.of(row, settings).model_dump(), key=key)


@router.get("", response_model=KeyList)
def list_keys(
    session: SessionDep,
    settings: SettingsDep,
    principal: AdminKey,
    project: Annotated[str | None, Query(max_length=64)] = None,
) -> KeyList:
    return KeyList(items=[KeyOut.of(row, settings) for row in service.list_keys(session, project)])


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: str, request: Request, session: SessionDep, principal: AdminKey) -> None:
    """Revoke: the key stops working here at once, in other processes within TRAINYARD_KEY_CACHE_S."""
    service.revoke_key(session, key_id, principal)
    authenticator: Authenticator = request.app.state.auth
    authenticator.forget(key_id)
