"""The SDK's retries against a real HTTP server (a tiny one in a thread) that answers 503 and
429 before it answers 200: what is retried, how long it waits, and that a retried submit keeps
its Idempotency-Key."""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app.client import Client, TrainyardError
from tests.e2e.conftest import free_port

JOB = {"id": "j1", "name": "n", "status": "queued", "dataset_id": "d1", "created_at": "2026-12-04T00:00:00Z"}


@dataclass
class Script:
    """What the server answers, in order: (status, headers); then 200 with `body`."""

    answers: list[tuple[int, dict[str, str]]]
    body: dict[str, object] = field(default_factory=lambda: JOB)
    seen: list[tuple[str, str, dict[str, str], float]] = field(default_factory=list)


def handler_for(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            script.seen.append(
                (self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
            )
            status, headers = script.answers.pop(0) if script.answers else (200, {})
            payload = json.dumps(script.body if status == 200 else {"error": f"busy ({status})"}).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def serve(script: Script, port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(script))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def scripted() -> Iterator[tuple[Script, str]]:
    script = Script(answers=[])
    server = serve(script)
    yield script, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_get_is_retried_through_503_and_429_then_answers(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"}), (503, {})]

    with Client(url, backoff_s=0.01) as client:
        job = client.jobs.get("j1")

    assert job.id == "j1" and len(script.seen) == 4


def test_retry_after_is_honoured(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [(429, {"Retry-After": "1"})]

    with Client(url, backoff_s=0.01) as client:
        client.jobs.get("j1")

    first, second = script.seen[0][3], script.seen[1][3]
    assert second - first >= 1.0  # the server said one second; the backoff alone would be 0.01


def test_a_retried_submit_sends_one_idempotency_key(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [(503, {"Retry-After": "0"}), (503, {"Retry-After": "0"})]

    with Client(url, backoff_s=0.01) as client:
        job = client.jobs.submit({"model": {}}, dataset="d1")

    keys = {headers["idempotency-key"] for _, _, headers, _ in script.seen}
    assert job.id == "j1" and len(script.seen) == 3 and len(keys) == 1


def test_the_api_key_goes_as_a_bearer_header(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    with Client(url, api_key="ty_secret") as client:
        client.jobs.get("j1")
    assert script.seen[0][2]["authorization"] == "Bearer ty_secret"


def test_a_client_error_is_not_retried_and_says_what_the_server_said(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [(404, {})]

    with Client(url, backoff_s=0.01) as client, pytest.raises(TrainyardError) as raised:
        client.jobs.get("nope")

    assert raised.value.status == 404 and raised.value.error == "busy (404)" and len(script.seen) == 1


def test_retries_give_up_with_the_last_error(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [(503, {"Retry-After": "0"})] * 10

    with Client(url, retries=2, backoff_s=0.01) as client, pytest.raises(TrainyardError) as raised:
        client.jobs.get("j1")

    assert raised.value.status == 503 and len(script.seen) == 3


def test_a_server_that_comes_up_late_is_reached_after_connection_errors() -> None:
    port = free_port()
    script = Script(answers=[])
    started: list[ThreadingHTTPServer] = []

    def start_later() -> None:
        time.sleep(0.5)
        started.append(serve(script, port))

    threading.Thread(target=start_later, daemon=True).start()
    try:
        with Client(f"http://127.0.0.1:{port}", retries=8, backoff_s=0.1, max_backoff_s=0.5) as client:
            assert client.jobs.get("j1").id == "j1"
    finally:
        for server in started:
            server.shutdown()
            server.server_close()


def test_nothing_listening_is_a_connection_error_after_the_retries() -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.01) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.jobs.get("j1")
