"""The inference hot path as plain ASGI, ahead of FastAPI's routing and dependency injection.

Profiled under load (py-spy, 64 connections, the seed MLP): FastAPI's route matching over
every route, dependency solving, telemetry and exception middlewares took ~45% of the process's
CPU per predict request, against ~10% for parsing, batching, inference and encoding together.
So the three TF Serving predict URLs, the two V2 infer URLs and the V2 liveness probe are
answered here, straight from the ASGI scope, with the same service calls and the same error
shape (`{"error", "detail"}`) as the FastAPI routes in app/api/models.py and app/api/v2.py.
Those routes stay declared: they document the API (OpenAPI) and answer any URL this path does
not match (a malformed name or version gets FastAPI's 422).

Auth holds here as there: with auth off, the local-server checks (app.auth.local_guard) run
first for every request, FastAPI's included; with auth on, the fast path resolves the key with
the same cached `Authenticator` and needs the `predict` scope before reading the body. A
request with an `Origin` goes through FastAPI when CORS is configured, for its CORS headers.
"""

import functools
import logging
import re
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from app.auth.authenticator import Authenticator
from app.auth.limits import RateKind
from app.auth.local_guard import refusal
from app.auth.principal import Scope
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
_PREDICT_SCOPE = str(Scope.PREDICT.value)
_LIVE = b'{"live":true}'
_NOT_POST = b'{"error":"predict and explain take POST only","detail":null}'


class ServingApp(FastAPI):
    """FastAPI, with the inference hot path answered before routing (see the module doc)."""

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            auth: Authenticator = self.state.auth
            if not auth.required:
                refused = refusal(scope["method"], path, scope["headers"], self.state.cors_origins)
                if refused is not None:
                    await _respond_error(send, refused)
                    return
            elif path in self.doc_paths:
                # FastAPI serves these outside any router: any valid key may read them.
                try:
                    await auth.principal(_header(scope, b"authorization"))
                except TrainyardError as exc:
                    await _respond_error(send, exc)
                    return
            if scope["method"] == "POST" and not (self.state.cors_origins and _header(scope, b"origin")):
                match = PREDICT_URL.fullmatch(path) or INFER_URL.fullmatch(path)
                if match is not None:
                    await self._infer(scope, receive, send, match)
                    return
            elif path == LIVE_URL and scope["method"] == "GET":
                await _respond(send, 200, _LIVE, _JSON)
                return
            elif path.endswith((":predict", ":explain")) and scope["method"] not in ("POST", "OPTIONS"):
                # Else GET /v1/models/{name} would take "m:predict" as a name and answer 422.
                # (Preflights go on, to the CORS middleware.)
                await _respond(send, 405, _NOT_POST, [*_JSON, (b"allow", b"POST")])
                return
        await super().__call__(scope, receive, send)

    @functools.cached_property
    def doc_paths(self) -> frozenset[str]:
        """The OpenAPI document and the pages that show it."""
        paths = (self.openapi_url, self.docs_url, self.redoc_url, self.swagger_ui_oauth2_redirect_url)
        return frozenset(path for path in paths if path)

    async def _infer(self, scope: ASGIScope, receive: Receive, send: Send, match: re.Match[str]) -> None:
        serving: ServingService = self.state.serving
        auth: Authenticator = self.state.auth
        name, version = match["name"], match["version"]
        try:
            principal = await auth.principal(_header(scope, b"authorization"))
            principal.require_name(_PREDICT_SCOPE)
            auth.limiter.take(principal.key_id, RateKind.PREDICT)
            project = principal.project_filter
            raw = await _read_body(receive, serving.settings.max_predict_bytes)
            if match.re is PREDICT_URL:
                label = match["label"]
                model = await serving.model(name, int(version) if version else None, label, project)
                body = await serving.predict_tfserving(model, raw)
                await _respond(send, 200, body, _JSON)
                return
            model = await serving.model(name, int(version) if version else None, project=project)
            header_length = _header(scope, v2.HEADER_LENGTH.encode())
            body, json_length = await serving.infer_v2(model, raw, header_length)
        except TrainyardError as exc:
            await _respond_error(send, exc)
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


def _header(scope: ASGIScope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _respond_error(send: Send, exc: TrainyardError) -> None:
    headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
    content = orjson.dumps({"error": exc.message, "detail": exc.detail})
    await _respond(send, exc.status_code, content, _JSON + headers)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, Any]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
