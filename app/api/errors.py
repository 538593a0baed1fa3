"""Every error as `{"error": "<message>", "detail": ...}` (API.md; TF Serving reads `error`)."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.db.pagination import BadCursor
from app.errors import TrainyardError
from app.ml.spec import UNION_TAGS


def error_response(
    status_code: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": message, "detail": detail}, status_code=status_code, headers=headers
    )


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
        messages = [f"{field_path(e['loc'])}: {e['msg']}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        detail = [
            {"loc": e["loc"], "path": field_path(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in errors
        ]
        return error_response(422, "; ".join(messages) + more, detail)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(
            exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)
        )
