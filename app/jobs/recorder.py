"""An attempt's progress rows (epochs, checkpoints, performance settings) written to the database
on a thread of their own, in the order training produced them, so that the training thread
never waits on a commit.

Each write is fenced in the database itself (`repository._owned`: this attempt, still running),
so a write that lands after the attempt was fenced off, handed back or ended changes nothing.
The runner flushes the recorder once training stops, before it writes the attempt's outcome:
every row of the attempt is committed before its final status.
"""

import contextvars
import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Write = Callable[[], None]


class Recorder:
    """One writer thread and a FIFO queue: writes run one at a time, in submission order.

    A write that raises is logged and skipped (each write does its own retrying); the ones
    after it still run. The thread runs in a copy of the creator's context (its log lines carry
    the job id). The thread is a daemon: a write stuck on the database never keeps a
    worker child from exiting.
    """

    def __init__(self, name: str = "recorder") -> None:
        self._queue: queue.SimpleQueue[Write | None] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._pending = 0
        self._closed = False
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name=name, daemon=True)
        self._thread.start()

    def submit(self, write: Write) -> None:
        """Queue `write`; returns at once. Raises RuntimeError once closed."""
        with self._idle:
            if self._closed:
                raise RuntimeError("recorder closed: the attempt's outcome is already being written")
            self._pending += 1
        self._queue.put(write)

    @property
    def pending(self) -> int:
        """Writes submitted and not finished yet."""
        return self._pending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write submitted so far has finished. False if `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Refuse further writes, flush, and end the thread. False if writes were still pending
        after `timeout` (they may still land; the database's fence keeps them harmless)."""
        with self._idle:
            first, self._closed = not self._closed, True
        flushed = self.flush(timeout)
        if first:
            self._queue.put(None)
        return flushed

    def _run(self) -> None:
        while (write := self._queue.get()) is not None:
            try:
                write()
            except Exception:
                log.exception("a progress write failed; the ones after it still run")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
