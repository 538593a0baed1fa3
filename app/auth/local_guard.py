"""With auth off, only the machine's own clients may drive the server, not web pages it visits.

A page in the user's browser can send requests to 127.0.0.1: a cross-site form or `fetch` POST
(CSRF), or, after pointing its own host name at 127.0.0.1, any request as if same-origin (DNS
rebinding). So, when no key is required, every request but the health probes must
- name a loopback host in `Host` (a rebound name such as `evil.example` is refused, 403),
- carry no `Origin` but its own or one in TRAINYARD_CORS_ORIGINS (403), and
- when it changes state, not send a body type a page may send cross-site without a CORS
  preflight (`text/plain`, form-encoded; multipart except to the dataset upload) to a JSON
  route (415).
"""

import functools
import ipaddress
from urllib.parse import urlsplit

from app.errors import Forbidden, TrainyardError, UnsupportedMediaType

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"})
UPLOAD_PATH = "/v1/datasets"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The body types a browser sends cross-site without asking first (the CORS "simple" ones).
_SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})


def is_loopback_name(host: str) -> bool:
    """Whether a host name (no port) means this machine: localhost, *.localhost, 127/8, ::1."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(authority: str) -> str:
    """`Host` header value without its port: `[::1]:8000` → `::1`, `localhost:8000` → `localhost`."""
    return urlsplit(f"//{authority}").hostname or ""


@functools.lru_cache(maxsize=1024)
def is_loopback_authority(authority: bytes) -> bool:
    """Whether a `Host` header value names this machine; cached: a server sees few values, and
    parsing one costs several µs, more than the rest of the checks together."""
    return is_loopback_name(host_of(authority.decode("latin-1")))


@functools.lru_cache(maxsize=1024)
def _simple_media_type(content_type: bytes) -> str | None:
    """The media type, when it is one a page may send cross-site without a preflight."""
    media = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    return media if media in _SIMPLE_TYPES else None


def refusal(
    method: str, path: str, headers: list[tuple[bytes, bytes]], cors_origins: frozenset[str]
) -> TrainyardError | None:
    """Why a request must be refused while auth is off, or None (it may go on)."""
    if path in OPEN_PATHS:
        return None
    host = origin = content_type = None
    for name, value in headers:
        if name == b"host":
            host = value
        elif name == b"origin":
            origin = value
        elif name == b"content-type":
            content_type = value
    if host is None or not is_loopback_authority(host):
        shown = host.decode("latin-1") if host is not None else None
        return Forbidden(
            f"Host {shown!r} is not a loopback name: with auth off this server answers only localhost, "
            "127.0.0.1 and [::1] (set TRAINYARD_AUTH=on and use API keys to serve other names)"
        )
    if origin is not None:
        text = origin.decode("latin-1")
        if text not in cors_origins and _authority(text) != host.decode("latin-1").lower():
            return Forbidden(
                f"cross-site request from Origin {text!r} refused: with auth off only this server's own "
                "pages and TRAINYARD_CORS_ORIGINS may call it"
            )
    if method not in SAFE_METHODS and content_type is not None:
        media = _simple_media_type(content_type)
        if media is not None and not (media == "multipart/form-data" and path == UPLOAD_PATH):
            return UnsupportedMediaType(
                f"Content-Type {media!r} is refused on this JSON route (a web page can send it cross-site): "
                "send 'Content-Type: application/json' or none"
            )
    return None


def _authority(origin: str) -> str | None:
    parts = urlsplit(origin)
    return parts.netloc.lower() if parts.scheme in ("http", "https") and parts.netloc else None
