"""The SDK's HTTP layer: one httpx client, Bearer auth, API errors as exceptions, and retries
with exponential backoff (honouring `Retry-After`) for requests that are safe to send twice."""

import email.utils
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER_S = 60.0  # a server asking for longer is better answered with an error than a hang


class TrainyardError(Exception):
    """The API answered an error: `status` (HTTP), `error` (its message) and `detail`."""

    def __init__(self, status: int, error: str, detail: Any = None, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {error}")
        self.status = status
        self.error = error
        self.detail = detail
        self.retry_after = retry_after

    @classmethod
    def of(cls, response: httpx.Response) -> "TrainyardError":
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error" in body:
            error, detail = str(body["error"]), body.get("detail")
        else:
            error, detail = response.text[:500] or response.reason_phrase, None
        return cls(response.status_code, error, detail, retry_after_s(response.headers.get("Retry-After")))


def retry_after_s(header: str | None) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None if absent or bad."""
    if not header:
        return None
    if header.strip().isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _retryable(error: BaseException) -> bool:
    if isinstance(error, TrainyardError):
        return error.status in RETRY_STATUSES
    return isinstance(error, httpx.TransportError)  # refused, reset, timed out


class _Wait:
    """Retry-After when the server gave one, else exponential backoff with jitter."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self._backoff = wait_exponential_jitter(initial=initial_s, max=max_s)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TrainyardError) and error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_AFTER_S)
        return float(self._backoff(state))


class Transport:
    """Sends requests to one trainyard server.

    Args:
        url: the server's base URL (default: `TRAINYARD_URL`, else http://127.0.0.1:8000).
        api_key: sent as `Authorization: Bearer` (default: `TRAINYARD_API_KEY`; none with auth off).
        retries: attempts after the first for idempotent requests.
        backoff_s: the first backoff; it doubles per attempt up to `max_backoff_s`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.url = (url or os.environ.get("TRAINYARD_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("TRAINYARD_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.retries = retries
        self._wait = _Wait(backoff_s, max_backoff_s)

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        ok: frozenset[int] = frozenset(),
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send once, or with retries when `idempotent` (GET, PUT, an `Idempotency-Key`d POST).

        Raises TrainyardError for an error status not in `ok`, httpx.TransportError when the
        server cannot be reached (after the retries)."""

        def attempt() -> httpx.Response:
            for _, fileobj in kwargs.get("files", {}).values():
                fileobj.seek(0)  # a retried upload sends the whole file again
            response = self.http.request(method, path, headers=headers, **kwargs)
            if response.is_error and response.status_code not in ok:
                raise TrainyardError.of(response)
            return response

        if not idempotent:
            return attempt()
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
            sleep=time.sleep,
        )
        return retrying(attempt)

    def close(self) -> None:
        self.http.close()
