"""A body limit on every route, enforced before the body is read (Content-Length) and while it
streams (a chunked body is counted, and refused the moment it passes the limit).

Uploads stream to disk under `MAX_UPLOAD_BYTES` (app/datasets/upload.py counts too), predict and
infer bodies are held in memory under `MAX_PREDICT_BYTES`, and every other body (a job spec,
a label move) under `MAX_REQUEST_BYTES`. The predict fast path (fast_path.py) reads its bodies
itself, under the same predict limit.
"""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response
from app.config import Settings

UPLOAD_PATH = "/v1/datasets"


def body_limit(settings: Settings, method: str, path: str) -> tuple[int, str]:
    """The largest body `method path` may send, and the setting that says so."""
    if method == "POST" and path.rstrip("/") == UPLOAD_PATH:
        return settings.max_upload_bytes, "TRAINYARD_MAX_UPLOAD_BYTES"
    if path.endswith((":predict", "/infer")):
        return settings.max_predict_bytes, "TRAINYARD_MAX_PREDICT_BYTES"
    return settings.max_request_bytes, "TRAINYARD_MAX_REQUEST_BYTES"


def too_large(limit: int, setting: str) -> str:
    return f"the request body is over the limit of {limit} bytes ({setting})"


class BodyLimitMiddleware:
    """413 for a body over its route's limit; the body is never read past the limit."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = body_limit(self.settings, scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await error_response(413, too_large(limit, setting))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes FastAPI's body reading unchanged (any other error
                    # becomes a 400) and reaches the error handlers as a 413.
                    raise HTTPException(413, too_large(limit, setting))
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed Content-Length before we see it
    return None
