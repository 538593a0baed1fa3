"""Server-Sent Events of the job event log: one job's (ending with `end`), or every job's.

A stream reads the table after the last id it sent, sends what it found, and waits for the
process's bell (app.events.wakeup) before reading again. Event ids are the log's ids, so a
reconnect's `Last-Event-ID` resumes exactly after the last event the client got. The `end`
event's id is `<last id>-end`: a client that reconnects with it is told the stream is over.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool
from sse_starlette import ServerSentEvent

from app.config import Settings
from app.db.session import session_scope
from app.errors import BadRequest, NotFound
from app.events import log as event_log
from app.events.fanout import RecentEvents
from app.events.wakeup import Bell, stream_wait_s
from app.jobs.schemas import JobOut
from app.models import Job, JobStatus, StreamEvent

END_SUFFIX = "-end"


@dataclass(frozen=True)
class ResumePoint:
    """Where a reconnecting client left off: after event `after`, or past the `end` event."""

    after: int
    ended: bool = False


def parse_last_event_id(value: str | None) -> ResumePoint | None:
    """The `Last-Event-ID` header as sent back by a client; BadRequest when it is not one of ours."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    ended = text.endswith(END_SUFFIX)
    number = text.removesuffix(END_SUFFIX)
    if not number.isdigit():
        raise BadRequest(
            f"Last-Event-ID: {value!r} is not an event id of this server (a number, or <number>-end)",
            detail=[{"loc": ["header", "Last-Event-ID"], "msg": "expected an event id"}],
        )
    return ResumePoint(after=int(number), ended=ended)


def _event(row: StreamEvent) -> ServerSentEvent:
    return ServerSentEvent(id=str(row.id), event=row.kind, data=json.dumps({"job_id": row.job_id, **row.data}))


def _read_job(url: str, job_id: str, after: int) -> tuple[Job, list[StreamEvent]]:
    with session_scope(url) as session:
        # The job before its events: when it is final here, its final event is among them.
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id} does not exist")
        rows = list(event_log.of_job(session, job_id, after))
        session.expunge_all()
        return job, rows


async def job_events(settings: Settings, bell: Bell, job_id: str, after: int) -> AsyncIterator[ServerSentEvent]:
    """The job's events after id `after`, live, then `end` (the final job object) once the job
    is final, and the stream closes."""
    wait_s = stream_wait_s(settings)
    while True:
        seen = bell.rung
        job, rows = await run_in_threadpool(_read_job, settings.sqlalchemy_url, job_id, after)
        for row in rows:
            after = row.id
            yield _event(row)
        if len(rows) == event_log.READ_BATCH:
            continue  # more waiting: no need to wait for a ring
        if job.status.is_final:
            yield ServerSentEvent(id=f"{after}{END_SUFFIX}", event="end", data=JobOut.of(job).model_dump_json())
            return
        await bell.wait(seen, wait_s)


def _read_all(
    url: str, after: int, status: JobStatus | None, name: str | None, project: str | None
) -> list[StreamEvent]:
    with session_scope(url) as session:
        rows = list(event_log.of_all(session, after, status=status, name=name, project=project))
        session.expunge_all()
        return rows


def latest_id(url: str) -> int:
    """The id of the newest event: where a stream that starts "from now" starts."""
    with session_scope(url) as session:
        return event_log.latest_id(session)


async def all_events(
    settings: Settings,
    bell: Bell,
    recent: RecentEvents,
    after: int,
    status: JobStatus | None,
    name: str | None,
    project: str | None,
) -> AsyncIterator[ServerSentEvent]:
    """Every job's events after id `after` (of `project`'s jobs; None: all), live, for as long as
    the client listens."""
    url = settings.sqlalchemy_url
    wait_s = stream_wait_s(settings)
    position = after
    while True:
        seen = bell.rung
        shared = await recent.after(position)
        if shared is not None:  # the process's one read, filtered here
            rows = [event.row for event in shared if event.matches(status, name, project)]
            newest, more = (shared[-1].row.id if shared else position), False
        else:  # behind the shared window: this stream reads the table itself
            rows = await run_in_threadpool(_read_all, url, position, status, name, project)
            newest, more = (rows[-1].id if rows else position), len(rows) == event_log.READ_BATCH
        for row in rows:
            yield _event(row)
        position = newest
        if not more:
            await bell.wait(seen, wait_s)
