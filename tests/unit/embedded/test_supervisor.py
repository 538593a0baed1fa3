"""The supervisor of `serve`'s built-in worker, on real subprocesses standing in for the worker."""

import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.embedded.supervisor import Backoff, Supervisor, WorkerState, describe_exit
from tests.factories import wait_for

QUICK = Backoff(initial_s=0.01, max_s=0.02, stable_after_s=3600)


def sleeper(ready_dir: Path, ignore_sigterm: bool = False) -> list[str]:
    """A process that writes `<pid>` into `ready_dir` once it is set up, then sleeps."""
    code = (
        "import os, signal, time, pathlib\n"
        + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_sigterm else "")
        + f"pathlib.Path({str(ready_dir)!r}, str(os.getpid())).touch()\n"
        + "time.sleep(600)\n"
    )
    return [sys.executable, "-c", code]


@pytest.fixture
def ready_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def exited() -> list[int]:
    return []


@pytest.fixture
def supervisor(ready_dir: Path, exited: list[int]) -> Iterator[Supervisor]:
    supervised = Supervisor(
        sleeper(ready_dir), consuming=lambda pid: True, after_exit=exited.append, stop_timeout_s=10, backoff=QUICK
    )
    supervised.start()
    yield supervised
    supervised.stop()


def running_pid(supervisor: Supervisor, ready_dir: Path, other_than: int | None = None) -> int:
    def ready() -> int | None:
        pid = supervisor.state().pid
        return pid if pid is not None and pid != other_than and (ready_dir / str(pid)).exists() else None

    return wait_for(ready, timeout=30, what="the supervised process to be up")


def test_a_killed_process_is_restarted_and_its_death_logged(
    supervisor: Supervisor, ready_dir: Path, exited: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.embedded.supervisor")
    first = running_pid(supervisor, ready_dir)
    os.kill(first, signal.SIGKILL)
    second = running_pid(supervisor, ready_dir, other_than=first)
    state = supervisor.state()
    assert (state.pid, state.restarts, state.last_exit) == (second, 1, "was killed by SIGKILL")
    assert exited == [first]
    assert f"embedded worker (pid {first}) was killed by SIGKILL; restarting it" in caplog.text
    assert f"embedded worker started (pid {second})" in caplog.text


def test_stop_ends_the_process_and_nothing_restarts_it(
    supervisor: Supervisor, ready_dir: Path, exited: list[int]
) -> None:
    pid = running_pid(supervisor, ready_dir)
    supervisor.stop()
    assert exited == [pid]
    assert supervisor.state() == WorkerState(pid=None, consuming=False, restarts=0, last_exit=None)


def test_a_process_that_ignores_sigterm_is_killed_after_the_stop_timeout(ready_dir: Path, exited: list[int]) -> None:
    supervisor = Supervisor(
        sleeper(ready_dir, ignore_sigterm=True),
        consuming=lambda pid: True,
        after_exit=exited.append,
        stop_timeout_s=0.5,
        backoff=QUICK,
    )
    supervisor.start()
    pid = running_pid(supervisor, ready_dir)
    supervisor.stop()
    assert exited == [pid]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_backoff_doubles_up_to_its_limit_and_resets_after_a_stable_run() -> None:
    backoff = Backoff(initial_s=1, max_s=30, stable_after_s=60)
    delays: list[float] = []
    previous = None
    for _ in range(7):
        previous = backoff.next_delay(previous, uptime_s=5)
        delays.append(previous)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next_delay(30, uptime_s=61) == 1


def test_readiness_says_why_the_worker_is_not_consuming() -> None:
    assert WorkerState(pid=7, consuming=True, restarts=2, last_exit="was killed by SIGKILL").problem() is None
    assert WorkerState(pid=None, consuming=False, restarts=1, last_exit="was killed by SIGKILL").problem() == (
        "the embedded worker is not running: it was killed by SIGKILL; restart 1 pending"
    )
    assert WorkerState(pid=9, consuming=False, restarts=1, last_exit="exited with code 1").problem() == (
        "the embedded worker (pid 9) is starting and consumes no queue yet (restart 1: the last one exited with code 1)"
    )


def test_exit_codes_and_signals_are_described() -> None:
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"
