"""Every error as `{"error": "<message>", "detail": ...}` (API.md; TF Serving reads `error`)."""

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from app.db.pagination import BadCursor
from app.errors import TrainyardError
from app.ml.spec import UNION_TAGS

log = logging.getLogger(__name__)

# PostgreSQL's SQLSTATE for a lock wait that passed lock_timeout.
_LOCK_NOT_AVAILABLE = "55P03"

# pydantic's names for the members of a union ("tagged-union[SGD,Adam]", "constrained-float"):
# its internals, not fields a user wrote.
_UNION_MEMBER = re.compile(
    r"^(?:[a-z-]+\[.*\]|function-[a-z-]+|constrained-[a-z]+|float|int|str|bool|none|lax-or-strict|json-or-python)"
)


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
        elif _is_union_member(item):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "body"


def _is_union_member(item: Any) -> bool:
    """pydantic's name for a union member, not a field the user wrote."""
    return isinstance(item, str) and (item in UNION_TAGS or _UNION_MEMBER.fullmatch(item) is not None)


def _message(msg: str) -> str:
    # Our validators raise ValueError with a full sentence; pydantic prefixes "Value error, ".
    return msg.removeprefix("Value error, ")


def database_unavailable(exc: Exception) -> bool:
    """Whether `exc` says the database cannot answer now (rather than that a query is wrong)."""
    if isinstance(exc, PoolTimeout | OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def database_unavailable_message(exc: Exception) -> str:
    """What a client is told when the database cannot answer now."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate == _LOCK_NOT_AVAILABLE or "database is locked" in str(exc):
        return "the record is being changed by another process (its worker may be unresponsive); retry shortly"
    if isinstance(exc, PoolTimeout):
        return "the server has no free database connection; retry shortly"
    return "the database is unreachable; retry shortly"


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
            {
                "loc": [item for item in e["loc"] if not _is_union_member(item)],
                "path": field_path(e["loc"]),
                "msg": _message(e["msg"]),
                "type": e["type"],
            }
            for e in errors
        ]
        return error_response(422, "; ".join(messages) + more, detail)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            log.exception("database error on %s %s", request.method, request.url.path, exc_info=exc)
            return error_response(500, "internal error; the server log has the details")
        # Not the client's fault and not a bug: the database is down, cut off, out of connections,
        # or a lock is held past db_lock_timeout_s. The client may retry; nothing was half-done
        # (the request's transaction rolled back).
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(503, database_unavailable_message(exc), headers={"Retry-After": "2"})

    @app.exception_handler(Exception)
    async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the server log has the details")

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))
