"""API key strings: generated with 256 random bits, prefixed, stored only as their SHA-256."""

import hashlib
import secrets

KEY_PREFIX = "ty_"
SHOWN_PREFIX_CHARS = 10  # "ty_" and 7 random characters: enough to tell keys apart in a list


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """The stored form. A plain SHA-256 suffices: a 256-bit random key cannot be guessed from it."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def shown_prefix(key: str) -> str:
    return key[:SHOWN_PREFIX_CHARS]


def bearer_key(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` header, or None when there is none."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None
