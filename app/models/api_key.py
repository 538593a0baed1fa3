"""API keys: who may call the API, for which project, with which scopes (app.auth)."""

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow
from app.models.dataset import new_id

DEFAULT_PROJECT = "default"


class ApiKey(Base):
    """One key. Only the SHA-256 of the key is stored: the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), default="")
    project: Mapped[str] = mapped_column(String(64), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    # hex SHA-256 of the whole key: a key has 256 random bits, so no salt or slow hash is needed
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # the first characters of the key (`ty_AbC1…`), so a user can tell keys apart in a list
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # written at most once per key-cache period per process, not per request
    last_used_at: Mapped[datetime | None]
