"""One read of the event log for every `/v1/events` stream of this process.

Without it, each new event woke every stream and each ran its own query: twenty dashboards cost
twenty reads (and twenty thread-pool hops) per epoch, CPU taken from training on a small
machine. `RecentEvents` keeps the newest events of the whole log with their job's name and
project; a woken stream asks it for what follows its position and filters in memory. A refresh
is shared by every stream that asked before it started, so one wake costs one or two reads.
A stream whose position is older than the window (a reconnect far behind) reads the table itself.
"""

import asyncio
import time
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool

from app.db.session import session_scope
from app.events import log as event_log
from app.models import JobStatus, StreamEvent


@dataclass(frozen=True)
class LoggedEvent:
    """An event of the log (detached from its session) with what the stream filters read."""

    row: StreamEvent
    job_name: str
    project: str

    def matches(self, status: JobStatus | None, name: str | None, project: str | None) -> bool:
        """The filters of `app.events.log.of_all`, applied in memory."""
        return (
            (status is None or self.row.status == status)
            and (name is None or self.job_name == name)
            and (project is None or self.project == project)
        )


class RecentEvents:
    """The newest events of the log (up to `keep`), shared by the streams of one event loop."""

    def __init__(self, url: str, keep: int = 4 * event_log.READ_BATCH) -> None:
        self._url = url
        self._keep = keep
        self._events: list[LoggedEvent] = []
        # Every event with an id above `_floor` is in `_events` (None: not read yet).
        self._floor: int | None = None
        self._refresh_started = float("-inf")
        self._lock = asyncio.Lock()

    async def after(self, position: int) -> list[LoggedEvent] | None:
        """The events with id > `position` committed before this call, oldest first; None when
        the window does not reach back to `position` (read the table instead)."""
        asked = time.monotonic()
        async with self._lock:
            # A refresh that started after this call sees everything committed before it.
            if self._refresh_started <= asked:
                self._refresh_started = time.monotonic()
                # Read in a thread, swapped in here: a stream never sees the list change under it.
                self._events, self._floor = await run_in_threadpool(self._refreshed, self._events, self._floor)
            events, floor = self._events, self._floor
        if floor is None or position < floor:
            return None
        return [event for event in events if event.row.id > position]

    def _refreshed(self, events: list[LoggedEvent], floor: int | None) -> tuple[list[LoggedEvent], int]:
        """`events` with what the log added since, trimmed to `keep`, and the new floor."""
        events = list(events)
        with session_scope(self._url) as session:
            if floor is None:
                floor = event_log.latest_id(session)
            while True:
                newest = events[-1].row.id if events else floor
                rows = event_log.with_jobs_after(session, newest)
                session.expunge_all()
                events.extend(LoggedEvent(row, name, project) for row, name, project in rows)
                if len(rows) < event_log.READ_BATCH:
                    break
        if len(events) > self._keep:
            dropped = len(events) - self._keep
            floor = events[dropped - 1].row.id
            events = events[dropped:]
        return events, floor
