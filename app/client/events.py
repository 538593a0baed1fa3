"""Following a job's Server-Sent Events stream, reconnecting with `Last-Event-ID` so that a
dropped connection loses and repeats nothing."""

import json
import time
from collections.abc import Iterator

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from app.client.transport import TrainyardError, Transport
from app.client.types import EndEvent, Epoch, EpochEvent, JobEvent, JobInfo, StatusEvent


def follow(
    transport: Transport, job_id: str, last_event_id: str | None = None, reconnects: int = 10
) -> Iterator[JobEvent]:
    """The job's events from the first (or after `last_event_id`) until `end`.

    A stream cut short (a restarted server, a proxy timeout) is resumed after the last event
    received, with exponential backoff, up to `reconnects` times in a row."""
    failures = 0
    while True:
        try:
            for event in _connect(transport, job_id, last_event_id):
                failures = 0
                last_event_id = event.id
                yield event
                if isinstance(event, EndEvent):
                    return
        except httpx.TransportError:
            pass  # the connection dropped: resume after the last event below
        except TrainyardError as error:
            if error.status not in (429, 503):
                raise
        if last_event_id is not None and last_event_id.endswith("-end"):
            return
        failures += 1
        if failures > reconnects:
            raise httpx.ReadError(f"the event stream of job {job_id} kept dropping ({reconnects} reconnects)")
        time.sleep(min(0.25 * 2**failures, 5.0))


def _connect(transport: Transport, job_id: str, last_event_id: str | None) -> Iterator[JobEvent]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    # No read timeout: keep-alive comments arrive every few seconds, but an epoch may take minutes.
    timeout = httpx.Timeout(transport.http.timeout.connect or 30.0, read=None)
    with connect_sse(transport.http, "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout) as source:
        if source.response.status_code == 204:  # the stream already ended: nothing after `N-end`
            return
        if source.response.is_error:
            source.response.read()
            raise TrainyardError.of(source.response)
        for sse in source.iter_sse():
            event = parse_event(sse)
            if event is not None:
                yield event


def parse_event(sse: ServerSentEvent) -> JobEvent | None:
    """A typed event; None for kinds this client does not know (a newer server may add some)."""
    data = json.loads(sse.data) if sse.data else {}
    if sse.event == "status":
        return StatusEvent(id=sse.id, **data)
    if sse.event == "epoch":
        return EpochEvent(id=sse.id, epoch=Epoch.model_validate(data))
    if sse.event == "end":
        return EndEvent(id=sse.id, job=JobInfo.model_validate(data))
    return None
