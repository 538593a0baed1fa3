"""`job.wait()` follows the SSE stream and, when the connection drops, reconnects with
`Last-Event-ID` so nothing is lost or repeated: against a real HTTP server in a thread that
cuts the first connection after two events and answers the rest after the id it is sent."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.client import Client
from app.client.types import EndEvent, EpochEvent, StatusEvent

JOB = {"id": "j1", "name": "n", "dataset_id": "d1", "created_at": "2026-12-04T00:00:00Z", "progress": {"epochs": 3}}
EVENTS = [
    ("1", "status", {"job_id": "j1", "from_status": "queued", "to_status": "running", "attempt": 1}),
    ("2", "epoch", {"job_id": "j1", "epoch": 1, "attempt": 1, "loss": 0.9}),
    ("3", "epoch", {"job_id": "j1", "epoch": 2, "attempt": 1, "loss": 0.5}),
    ("4", "epoch", {"job_id": "j1", "epoch": 3, "attempt": 1, "loss": 0.3}),
    ("5", "status", {"job_id": "j1", "from_status": "running", "to_status": "succeeded", "attempt": 1}),
    ("5-end", "end", JOB | {"status": "succeeded"}),
]


class Stream:
    def __init__(self) -> None:
        self.last_event_ids: list[str | None] = []


@pytest.fixture
def flaky_stream() -> Iterator[tuple[Stream, str]]:
    stream = Stream()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/v1/jobs/j1?view=full":  # the SDK reads whole job objects
                body = json.dumps(JOB | {"status": "running"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            last = self.headers.get("Last-Event-ID")
            stream.last_event_ids.append(last)
            after = [e for e in EVENTS if last is None or _after(e[0], last)]
            first_connection = len(stream.last_event_ids) == 1
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for event_id, kind, data in after[:2] if first_connection else after:
                self.wfile.write(f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
            self.close_connection = True  # the first connection drops before `end`

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield stream, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _after(event_id: str, last: str) -> bool:
    return int(event_id.removesuffix("-end")) > int(last) or (event_id.endswith("-end") and not last.endswith("-end"))


def test_a_dropped_stream_resumes_after_the_last_event_with_nothing_lost_or_repeated(
    flaky_stream: tuple[Stream, str],
) -> None:
    stream, url = flaky_stream
    with Client(url) as client:
        job = client.jobs.get("j1")
        events = list(job.events())

    assert stream.last_event_ids == [None, "2"]
    assert [e.id for e in events] == ["1", "2", "3", "4", "5", "5-end"]
    assert isinstance(events[0], StatusEvent) and events[0].to_status == "running"
    assert [e.epoch.epoch for e in events if isinstance(e, EpochEvent)] == [1, 2, 3]
    assert isinstance(events[-1], EndEvent) and job.info.status == "succeeded"
    epoch = events[1]
    assert isinstance(epoch, EpochEvent) and epoch.epoch.logs == {"loss": 0.9}
