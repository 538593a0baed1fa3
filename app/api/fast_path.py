"""The inference hot path as plain ASGI, ahead of FastAPI's routing and dependency injection.

Profiled under load (py-spy, 64 connections, the seed MLP): FastAPI's route matching over
every route, dependency solving, telemetry and exception middlewares took ~45% of the process's
CPU per predict request, against ~10% for parsing, batching, inference and encoding together.
So the three TF Serving predict URLs, the two V2 infer URLs and the V2 liveness probe are
answered here, straight from the ASGI scope, with the same service calls and the same error
shape (`{"error", "detail"}`) as the FastAPI routes in app/api/models.py and app/api/v2.py.
Those routes stay declared: they document the API (OpenAPI) and answer any URL this path does
not match (a malformed name or version gets FastAPI's 422).
"""

import logging
import re
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app.errors import PayloadTooLarge, TrainyardError
from app.serving import v2
from app.serving.service import ServingService

log = logging.getLogger(__name__)

_NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127})"
_VERSION = r"/versions/(?P<version>[1-9][0-9]{0,9})"
_LABEL = r"/labels/(?P<label>[A-Za-z0-9][A-Za-z0-9._-]{0,63})"
PREDICT_URL = re.compile(rf"/v1/models/{_NAME}(?:{_VERSION}|{_LABEL})?:predict")
INFER_URL = re.compile(rf"/v2/models/{_NAME}(?:{_VERSION})?/infer")
LIVE_URL = "/v2/health/live"

_JSON = [(b"content-type", b"application/json")]
_LIVE = b'{"live":true}'


class ServingApp(FastAPI):
    """FastAPI, with the inference hot path answered before routing (see the module doc)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if scope["method"] == "POST":
                match = PREDICT_URL.fullmatch(path) or INFER_URL.fullmatch(path)
                if match is not None:
                    await self._infer(scope, receive, send, match)
                    return
            elif path == LIVE_URL and scope["method"] == "GET":
                await _respond(send, 200, _LIVE, _JSON)
                return
        await super().__call__(scope, receive, send)

    async def _infer(self, scope: Scope, receive: Receive, send: Send, match: re.Match[str]) -> None:
        serving: ServingService = self.state.serving
        name, version = match["name"], match["version"]
        try:
            raw = await _read_body(receive, serving.settings.max_predict_bytes)
            if match.re is PREDICT_URL:
                label = match["label"]
                model = await serving.model(name, int(version) if version else None, label)
                body = await serving.predict_tfserving(model, raw)
                await _respond(send, 200, body, _JSON)
                return
            model = await serving.model(name, int(version) if version else None)
            header_length = _header(scope, v2.HEADER_LENGTH.encode())
            body, json_length = await serving.infer_v2(model, raw, header_length)
        except TrainyardError as exc:
            headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
            content = orjson.dumps({"error": exc.message, "detail": exc.detail})
            await _respond(send, exc.status_code, content, _JSON + headers)
            return
        except Exception:
            log.exception("inference on %s failed", scope["path"])
            content = orjson.dumps({"error": "internal error while running the model"})
            await _respond(send, 500, content, _JSON)
            return
        if json_length is None:
            await _respond(send, 200, body, _JSON)
        else:
            headers = [
                (b"content-type", b"application/octet-stream"),
                (b"inference-header-content-length", str(json_length).encode()),
            ]
            await _respond(send, 200, body, headers)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise TrainyardError("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"the request body is over {limit} bytes (TRAINYARD_MAX_PREDICT_BYTES): send fewer rows per request"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, Any]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
