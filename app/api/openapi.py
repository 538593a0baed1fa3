"""The OpenAPI document as the service really answers: every error response with its body, and
the responses that are not JSON (Prometheus text, artifacts, binary tensors) with their types.

FastAPI documents a 422 with its own `HTTPValidationError` body and no other error; every error
here is `{"error": "<message>", "detail": ...}` (app/api/errors.py), and any route may answer
400 (a malformed body), 413 (over its body limit) or 503 (the CPU pool is busy). Clients and the
fuzzing in CI (tests/integration/test_fuzz_api.py) read this document, so it must be true.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what was wrong, naming the field, row or setting"},
        "detail": {
            "description": "structured context; for 422, a list of {loc, path, msg, type}",
        },
    },
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERRORS = {
    "400": "malformed request (body, JSON, form or tensor)",
    "401": "no valid API key (`WWW-Authenticate: Bearer`)",
    "403": "the key lacks the scope, or the request is cross-site",
    "404": "no such dataset, job, model, version or label",
    "409": "conflicts with the current state",
    "413": "the body, rows or decoded upload are over a limit (the message names the setting)",
    "422": "well-formed but invalid: the message names the field",
    "429": "a bounded queue is full; retry after `Retry-After` seconds",
    "503": "busy, past a time budget, or a dependency is down; retry after `Retry-After` seconds",
}
# Answers whose body is not the error object: readiness probes say what is missing.
STATUS_BODIES = {
    ("/readyz", "get"): "503",
    ("/v2/health/ready", "get"): "503",
    ("/v2/models/{name}/ready", "get"): "503",
    ("/v2/models/{name}/versions/{version}/ready", "get"): "503",
}
ANY_JSON: dict[str, Any] = {"application/json": {"schema": {}}}
BINARY = {"schema": {"type": "string", "format": "binary"}}


def install_openapi(app: FastAPI) -> None:
    """Generate the document once, with the error responses and content types declared."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = describe_responses(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe_responses(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code, description in ERRORS.items():
                body = (
                    ANY_JSON
                    if STATUS_BODIES.get((path, method)) == code
                    else {"application/json": {"schema": ERROR_REF}}
                )
                responses[code] = {"description": description, "content": body}
            _declare_content(path, method, responses)
    return document


def _declare_content(path: str, method: str, responses: dict[str, Any]) -> None:
    ok = responses.get("200") or responses.get("201") or responses.get("202")
    if ok is None:
        return
    if path == "/metrics":
        ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif path.endswith("/artifact"):
        ok["content"] = {"application/octet-stream": BINARY}
    elif path.endswith("/infer"):
        # Binary tensors follow the JSON header when the request asks for them.
        ok["content"] = {"application/json": {"schema": {"type": "object"}}, "application/octet-stream": BINARY}
    elif path.endswith(":predict"):
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
