"""What wakes the event streams of one API process when the event log grows.

A `Bell` is rung by one background task per process: a PostgreSQL LISTEN on the channel that
every append NOTIFYs at commit, or, on SQLite (or with `events_listen` off), a timer. A ring
carries no data: the streams re-read the table, so a missed ring delays an event at most until
the stream's next read (they re-read on every keep-alive), it never loses one.
"""

import asyncio
import contextlib
import logging

import psycopg
from sqlalchemy.engine import make_url

from app.config import Settings
from app.events.log import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class Bell:
    """A counter of rings and a way to wait for the next one (one event loop)."""

    def __init__(self) -> None:
        self.rung = 0
        self._next = asyncio.Event()

    def ring(self) -> None:
        self.rung += 1
        current, self._next = self._next, asyncio.Event()
        current.set()

    async def wait(self, seen: int, timeout: float) -> None:
        """Return once the bell rang after `seen` was read from `rung` (at once if it already
        did), or after `timeout` seconds."""
        if self.rung != seen:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._next.wait(), timeout)


def listens(settings: Settings) -> bool:
    """Whether this process is woken by NOTIFY (else it polls every `events_poll_s`)."""
    return settings.events_listen and make_url(settings.sqlalchemy_url).get_backend_name() == "postgresql"


def stream_wait_s(settings: Settings) -> float:
    """How long a stream waits for a ring before it reads the table anyway."""
    return settings.events_keepalive_s if listens(settings) else settings.events_poll_s


async def ring_forever(settings: Settings, bell: Bell) -> None:
    """The process's one source of rings: LISTEN on PostgreSQL, a timer otherwise."""
    if not listens(settings):
        while True:
            await asyncio.sleep(settings.events_poll_s)
            bell.ring()
    conninfo = make_url(settings.sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
                await connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                bell.ring()  # whatever was appended while not listening
                async for _ in connection.notifies():
                    bell.ring()
        except (psycopg.Error, OSError):
            log.warning("event notifications lost their connection; reconnecting in 1 s", exc_info=True)
            bell.ring()
            await asyncio.sleep(1.0)
