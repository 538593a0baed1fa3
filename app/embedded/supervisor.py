"""`serve`'s built-in worker: a subprocess restarted with backoff whenever it dies.

One thread per supervisor starts the process, waits for it and starts it again. The same
thread starts every process on purpose: the worker asks the kernel for SIGTERM when its parent
dies (PR_SET_PDEATHSIG), and on Linux "parent" means the thread that forked it.
"""

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.config import Settings
from app.embedded import transport
from app.queue import QUEUES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Seconds to wait before a restart: `initial_s`, doubling after each quick death up to
    `max_s`; back to `initial_s` once a process stayed up `stable_after_s`."""

    initial_s: float = 1.0
    max_s: float = 30.0
    stable_after_s: float = 60.0

    def next_delay(self, previous_s: float | None, uptime_s: float) -> float:
        if previous_s is None or uptime_s >= self.stable_after_s:
            return self.initial_s
        return min(previous_s * 2, self.max_s)


@dataclass(frozen=True)
class WorkerState:
    """What /readyz shows about the built-in worker."""

    pid: int | None
    consuming: bool
    restarts: int
    last_exit: str | None  # how the previous process ended, e.g. "was killed by SIGKILL"

    def problem(self) -> str | None:
        """None when the worker consumes its queues, else a sentence saying why not."""
        if self.consuming:
            return None
        if self.pid is None and self.last_exit is None:
            return "the embedded worker is not running yet"
        if self.pid is None:
            return f"the embedded worker is not running: it {self.last_exit}; restart {self.restarts} pending"
        ended = f" (restart {self.restarts}: the last one {self.last_exit})" if self.last_exit else ""
        return f"the embedded worker (pid {self.pid}) is starting and consumes no queue yet{ended}"


class Supervisor:
    """Runs `command` as a subprocess and restarts it with `backoff` when it exits.

    Args:
        command: the worker's argv.
        consuming: whether the process with this pid consumes its queues yet.
        after_exit: called with the pid of each process that ended (cleanup of what it left).
        stop_timeout_s: how long `stop()` waits after SIGTERM before SIGKILL.
    """

    def __init__(
        self,
        command: Sequence[str],
        consuming: Callable[[int], bool],
        after_exit: Callable[[int], None],
        stop_timeout_s: float,
        backoff: Backoff | None = None,
    ) -> None:
        self._command = list(command)
        self._consuming = consuming
        self._after_exit = after_exit
        self._stop_timeout_s = stop_timeout_s
        self._backoff = backoff or Backoff()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._restarts = 0
        self._last_exit: str | None = None
        self._thread = threading.Thread(target=self._run, name="embedded-worker-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def state(self) -> WorkerState:
        with self._lock:
            process, restarts, last_exit = self._process, self._restarts, self._last_exit
        alive = process is not None and process.poll() is None
        pid = process.pid if process is not None and alive else None
        return WorkerState(
            pid=pid,
            consuming=pid is not None and self._consuming(pid),
            restarts=restarts,
            last_exit=last_exit,
        )

    def stop(self) -> None:
        """SIGTERM the worker, wait up to `stop_timeout_s` for it to hand its job back, then
        SIGKILL; no restart after this."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None and process.poll() is None:
            log.info("stopping the embedded worker (pid %s), up to %.0f s", process.pid, self._stop_timeout_s)
            process.terminate()
        if self._thread.ident is None:
            return  # never started
        # The supervising thread returns once the process has ended.
        self._thread.join(self._stop_timeout_s)
        if self._thread.is_alive() and process is not None:
            log.warning("the embedded worker (pid %s) did not stop in time; killing it", process.pid)
            process.kill()
            self._thread.join()

    def _run(self) -> None:
        delay: float | None = None
        while True:
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    process = subprocess.Popen(self._command, preexec_fn=_die_with_parent)
                except OSError as exc:
                    process = None
                    ended = f"could not be started: {exc}"
                self._process = process
            started = time.monotonic()
            if process is not None:
                log.info("embedded worker started (pid %s)", process.pid)
                ended = describe_exit(process.wait())
                self._after_exit(process.pid)
                if self._stopping.is_set():
                    log.info("embedded worker (pid %s) stopped: %s", process.pid, ended)
                    return
            delay = self._backoff.next_delay(delay, time.monotonic() - started)
            with self._lock:
                self._last_exit = ended
                self._restarts += 1
            log.error(
                "embedded worker (pid %s) %s; restarting it in %.0f s (restart %d)",
                process.pid if process is not None else "-",
                ended,
                delay,
                self._restarts,
            )
            if self._stopping.wait(delay):
                return


def describe_exit(code: int) -> str:
    """`Popen.returncode` in words: "exited with code 1", "was killed by SIGKILL"."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _die_with_parent() -> None:
    # If `serve` is killed outright, the kernel sends the worker SIGTERM (Linux only). Runs in
    # the forked child of a threaded process: call a function resolved beforehand, since loading
    # a library here could wait forever on a lock another thread held at fork time.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl if sys.platform.startswith("linux") else None


def embedded_worker(settings: Settings) -> Supervisor:
    """The supervised `trainyard worker` that `serve` runs in embedded mode: one job at a time,
    every queue (one machine, one worker: GPU jobs would otherwise wait forever)."""
    command = [
        sys.executable,
        "-m",
        "app.cli",
        "worker",
        "--concurrency",
        "1",
        "--queues",
        ",".join(QUEUES),
        "--name",
        f"embedded-{os.getpid()}@{socket.gethostname()}",
    ]
    return Supervisor(
        command,
        consuming=lambda pid: transport.consuming(settings.broker_dir, pid, QUEUES),
        after_exit=lambda pid: transport.forget_consumer(settings.broker_dir, pid),
        # The worker's own grace, plus its start-up and Celery's shutdown.
        stop_timeout_s=settings.shutdown_grace_s + 5,
    )
