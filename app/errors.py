"""Domain errors raised by services; the API maps each to an HTTP status."""


class TrainyardError(Exception):
    """Base of the errors a client can act on. `detail` may carry structured context."""

    status_code = 400
    headers: dict[str, str] | None = None

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(TrainyardError):
    status_code = 404


class Conflict(TrainyardError):
    status_code = 409


class PayloadTooLarge(TrainyardError):
    status_code = 413


class InvalidInput(TrainyardError):
    """Well-formed JSON that cannot work: a spec or dataset problem, named by path."""

    status_code = 422


class BadRequest(TrainyardError):
    status_code = 400


class Unavailable(TrainyardError):
    status_code = 503


class TooManyRequests(TrainyardError):
    """A bounded queue is full; the client should retry after `Retry-After` seconds."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class Unauthorized(TrainyardError):
    """No API key, or one that is unknown, revoked or expired."""

    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 - read-only, like the base's None


class Forbidden(TrainyardError):
    """A valid key without the scope the request needs, or a request refused for its origin."""

    status_code = 403


class UnsupportedMediaType(TrainyardError):
    status_code = 415
