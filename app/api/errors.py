"""Every error as `{"error": "<message>", "detail": ...}` (API.md; TF Serving reads `error`)."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.db.pagination import BadCursor
from app.errors import TrainyardError
from app.ml.spec import UNION_TAGS

log = logging.getLogger(__name__)


def error_response(
    status_code: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail}, status_code=status_code, headers=headers)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "model", "layers", 2, "Dense", "units")` → `model.layers[2].units`."""
    parts: list[str] = []
    for item in loc:
        if item in ("body", "query", "path", "header") and not parts:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in UNION_TAGS or str(item).startswith(("function-", "literal[")):
            continue  # pydantic's name for a union member, not a field the user wrote
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "body"


def _message(msg: str) -> str:
    # Our validators raise ValueError with a full sentence; pydantic prefixes "Value error, ".
    return msg.removeprefix("Value error, ")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TrainyardError)
    async def _domain_error(_: Request, exc: TrainyardError) -> JSONResponse:
        return error_response(exc.status_code, exc.message, exc.detail, exc.headers)

    @app.exception_handler(BadCursor)
    async def _bad_cursor(_: Request, exc: BadCursor) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        messages = [f"{field_path(e['loc'])}: {_message(e['msg'])}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        detail = [
            {"loc": e["loc"], "path": field_path(e["loc"]), "msg": _message(e["msg"]), "type": e["type"]}
            for e in errors
        ]
        return error_response(422, "; ".join(messages) + more, detail)

    @app.exception_handler(Exception)
    async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the server log has the details")

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))
