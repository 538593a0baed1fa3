"""The embedded broker: kombu's filesystem transport, made safe to read while written, and FIFO.

kombu's own filesystem transport opens a message file under its final name and then writes
it, so a consumer polling the folder can take the file while it is still empty (kombu#1551):
the JSON decode fails and the worker dies. Its file names start with a millisecond count that
is not zero-padded and ties are broken by a random uuid, so a sorted listing is not submission
order either (at the step from 8 to 9 digits every newer name sorts before every older one).

Here a message is written under a temporary name outside the folder's listing, flushed, and
renamed into place (atomic on POSIX), so a visible message is always complete. Names start
with a 20-digit, zero-padded sequence that grows across processes and restarts, and a consumer
takes the oldest message of all the queues it consumes (one worker, both queues: one order).
A consumer claims a message by renaming it into its own folder, so two never take the same one.

Consumers also leave a marker file per queue while they consume (`consumers/<pid>.<queue>`),
which is how `serve` knows its built-in worker is ready, the way a server broker counts them.
"""

import fcntl
import functools
import logging
import os
import time
import uuid
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem, virtual
from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)

#: The broker URL scheme; `celery_config` uses it for the local broker.
SCHEME = "trainyard-fs"
TRANSPORT_ALIASES[SCHEME] = "app.embedded.transport:Transport"

SEQUENCE_DIGITS = 20
INCOMING = ".incoming"  # written here, then renamed into the queue folder
CLAIMED = ".claimed"  # a consumer moves a message here before it reads it
REJECTED = "rejected"  # files that are not a message (say, a torn one left by the old transport)
CONSUMERS = "consumers"
SEQUENCE_FILE = ".sequence"


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear whole and leave in sequence order."""

    # kombu's two base classes name the second argument differently; the filesystem one wins.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        folder = self.data_folder_out
        name = f"{self._next_sequence(folder):0{SEQUENCE_DIGITS}d}_{uuid.uuid4().hex}.{queue}.msg"
        temporary = os.path.join(_subfolder(folder, INCOMING), name)
        # No fsync (5-20 ms here, on the submit path): a power cut may still leave an empty
        # message, which a consumer sets aside; the job lives in SQL and serve re-sends every
        # queued job when it starts.
        with open(temporary, "wb") as file:
            file.write(dumps(payload).encode())
        os.rename(temporary, os.path.join(folder, name))

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        payload, _ = self._take_oldest([queue])
        return payload

    def _get_many(self, queues: list[str], timeout: float | None = None) -> None:
        """Deliver the oldest message of all `queues` (kombu's default is one queue after the
        other, which puts a job of one queue ahead of older jobs of the other)."""
        payload, queue = self._take_oldest(queues)
        self.connection._deliver(payload, queue)

    def _take_oldest(self, queues: list[str]) -> tuple[Any, str]:
        folder = self.data_folder_in
        by_suffix = {f"{queue}.msg": queue for queue in queues}
        # An idle poll is this listdir, every polling_interval: keep it the only system call.
        names = sorted(name for name in os.listdir(folder) if name.partition(".")[2] in by_suffix)
        for name in names:
            claimed = os.path.join(_subfolder(folder, CLAIMED), name)
            try:
                os.rename(os.path.join(folder, name), claimed)
            except FileNotFoundError:
                continue  # another consumer took it first
            try:
                with open(claimed, "rb") as file:
                    payload = loads(file.read().decode())
            except ValueError:
                _reject(Path(folder), Path(claimed))
                continue
            if self.store_processed:
                os.replace(claimed, os.path.join(self.processed_folder, name))
            else:
                os.unlink(claimed)
            return payload, by_suffix[name.partition(".")[2]]
        raise Empty()

    def _next_sequence(self, folder: str) -> int:
        """The next message number: the wall clock in ns, or one past the last number handed
        out when that is larger (a clock stepped back, two messages in one ns), shared by every
        process writing to `folder` through a locked file."""
        descriptor = os.open(os.path.join(folder, SEQUENCE_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            last = os.pread(descriptor, SEQUENCE_DIGITS, 0)
            number = max(time.time_ns(), int(last) + 1 if last.isdigit() else 0)
            # Fixed width: the new number overwrites the old one whole.
            os.pwrite(descriptor, f"{number:0{SEQUENCE_DIGITS}d}".encode(), 0)
            return number
        finally:
            os.close(descriptor)  # also releases the lock

    def basic_consume(self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any) -> Any:
        result = super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)
        _consumer_marker(Path(self.data_folder_in), os.getpid(), queue).touch()
        return result

    def basic_cancel(self, consumer_tag: str) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)
        result = super().basic_cancel(consumer_tag)
        if queue is not None and queue not in self._active_queues:
            _consumer_marker(Path(self.data_folder_in), os.getpid(), queue).unlink(missing_ok=True)
        return result


class Transport(filesystem.Transport):
    """kombu transport `trainyard-fs://` (see the module docstring)."""

    Channel = Channel
    driver_type = SCHEME
    driver_name = SCHEME

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        # kombu keeps one set of bindings per process for every filesystem broker, so a second
        # folder (another home in the same process) would be taken for bound and skipped; the
        # bindings of a folder live in its control files, so keep one state per folder.
        folder = str(client.transport_options.get("data_folder_in", "data_in"))
        self.state = _states.setdefault(folder, virtual.BrokerState())


_states: dict[str, virtual.BrokerState] = {}


def consuming(broker_dir: Path, pid: int, queues: tuple[str, ...]) -> bool:
    """Whether process `pid` consumes every one of `queues` from the broker in `broker_dir`."""
    return all(_consumer_marker(broker_dir, pid, queue, create=False).exists() for queue in queues)


def forget_consumer(broker_dir: Path, pid: int) -> None:
    """Remove the markers of a consumer that is gone (a killed process cannot remove its own)."""
    folder = broker_dir / CONSUMERS
    if folder.is_dir():
        for marker in folder.glob(f"{pid}.*"):
            marker.unlink(missing_ok=True)


@functools.cache
def _subfolder(folder: str, name: str) -> str:
    """`folder/name`, created on first use in this process."""
    path = os.path.join(folder, name)
    os.makedirs(path, exist_ok=True)
    return path


def _consumer_marker(broker_dir: Path, pid: int, queue: str, create: bool = True) -> Path:
    folder = broker_dir / CONSUMERS
    if create:
        folder.mkdir(exist_ok=True)
    return folder / f"{pid}.{queue.replace(os.sep, '_')}"


def _reject(folder: Path, claimed: Path) -> None:
    rejected = folder / REJECTED
    rejected.mkdir(exist_ok=True)
    os.replace(claimed, rejected / claimed.name)
    log.error(
        "broker message %s is not valid JSON (%d bytes); moved to %s. A job whose message this "
        "was is sent again by the recovery sweep.",
        claimed.name,
        (rejected / claimed.name).stat().st_size,
        rejected,
    )
