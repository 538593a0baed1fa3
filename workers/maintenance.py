"""What a worker's main process does besides dispatching messages, on a thread of its own:

- report itself in the `workers` table (read by /readyz, the sweep, and the submit-time check of
  a job's `resources.gpus` against the devices it advertises);
- run the recovery sweep (one process at a time across the cluster: a cluster whose API is down
  still recovers its jobs);
- end children that run a job no longer theirs (cancelled, fenced off, taken over) for longer
  than a grace period: a child stuck where its own watch cannot act must not keep the slot;
- on shutdown: tell the children to hand their jobs back, and kill what has not stopped once
  `shutdown_grace_s` has passed.
"""

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

from celery.worker import state as worker_state

from app.config import Settings
from app.db.session import session_scope
from app.jobs import recovery, repository
from app.models import JobStatus
from app.worker_registry import repository as worker_registry
from app.worker_registry.devices import DevicePlan

log = logging.getLogger(__name__)


class Maintenance(threading.Thread):
    def __init__(self, settings: Settings, name: str, queues: list[str], devices: DevicePlan | None = None) -> None:
        super().__init__(name="trainyard-maintenance", daemon=True)
        self._settings = settings
        self._name = name
        self._queues = queues
        self._devices = devices
        self._wake = threading.Event()
        self._stopping = False
        self._not_owned_since: dict[int, float] = {}

    def run(self) -> None:
        self._pass()
        while not self._wake.wait(self._settings.sweep_interval_s) or self._stopping:
            self._pass()
            if self._stopping:
                return

    def _pass(self) -> None:
        try:
            with session_scope(self._settings.sqlalchemy_url) as session:
                worker_registry.report(
                    session,
                    self._name,
                    socket.gethostname(),
                    os.getpid(),
                    self._queues,
                    active_jobs=held_messages(),
                    stopping=self._stopping,
                    devices=self._devices,
                )
                if not self._stopping:
                    recovery.sweep(session, self._settings)
                    self._end_orphaned_children(session)
        except Exception:
            log.exception("maintenance pass failed; retrying in %ss", self._settings.sweep_interval_s)

    def _end_orphaned_children(self, session: Any) -> None:
        grace = max(self._settings.shutdown_grace_s, 2 * self._settings.sweep_interval_s)
        now = time.monotonic()
        seen: set[int] = set()
        for job_id, pid in running_requests():
            seen.add(pid)
            job = repository.get(session, job_id)
            owned = (
                job is not None and job.status == JobStatus.RUNNING and job.worker == f"{socket.gethostname()}:{pid}"
            )
            if owned or (job is not None and job.status == JobStatus.QUEUED and job.worker is None):
                self._not_owned_since.pop(pid, None)  # running it, or about to claim it
                continue
            since = self._not_owned_since.setdefault(pid, now)
            if now - since >= grace:
                status = job.status.value if job is not None else "deleted"
                log.warning("child %s still runs job %s, which is %s and not its own: killing it", pid, job_id, status)
                _kill(pid)
        for pid in set(self._not_owned_since) - seen:
            del self._not_owned_since[pid]

    def shut_down(self) -> None:
        """Called from the signal handler that starts the warm shutdown: ask the children running
        jobs to hand them back; a thread marks this worker stopping and kills what has not
        stopped after the grace period."""
        self._stopping = True
        pids = [pid for _, pid in running_requests()]
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        threading.Thread(target=self._after_shutdown_signal, args=(pids,), name="trainyard-grace", daemon=True).start()

    def _after_shutdown_signal(self, pids: Iterable[int]) -> None:
        self._wake.set()
        deadline = time.monotonic() + self._settings.shutdown_grace_s + 2
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                log.error("child %s did not hand its job back within the grace period: killing it", pid)
                _kill(pid)

    def remove(self) -> None:
        try:
            with session_scope(self._settings.sqlalchemy_url) as session:
                worker_registry.remove(session, self._name)
        except Exception:
            log.warning("could not remove this worker's row; it goes stale", exc_info=True)


def held_messages() -> int:
    """Job messages this process holds: running in a child, or received and waiting for a child
    (a fresh child imports Keras first). A worker holding none is idle: a job queued for long
    beside it has lost its message."""
    held = _snapshot(worker_state.reserved_requests, worker_state.active_requests)
    return 1 if held is None else len(held)  # unknown: say busy, not a lost message


def running_requests() -> list[tuple[str, int]]:
    """(job id, child pid) of every job message a child of this process is running."""
    requests = _snapshot(worker_state.active_requests) or set()
    return [(str(r.args[0]), int(r.worker_pid)) for r in requests if r.args and r.worker_pid]


def _snapshot(*weak_sets: Any) -> set[Any] | None:
    """The union of Celery's request WeakSets, copied while the dispatching thread may change
    them (a copy then raises RuntimeError: try again); None if it never held still."""
    for _ in range(3):
        try:
            return set().union(*(set(requests) for requests in weak_sets))
        except RuntimeError:
            continue
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _kill(pid: int) -> None:
    _signal(pid, signal.SIGKILL)
