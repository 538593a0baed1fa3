"""The attempt's progress rows are written off the training thread, in order, and all of them
before the attempt's outcome."""

import threading

import pytest

from app.jobs.recorder import Recorder


def test_writes_run_in_the_order_they_were_submitted() -> None:
    recorder = Recorder()
    done: list[int] = []
    for n in range(200):
        recorder.submit(lambda n=n: done.append(n))
    assert recorder.close(timeout=10)
    assert done == list(range(200))


def test_submitting_never_waits_for_a_slow_write_and_flush_waits_for_all_of_them() -> None:
    recorder = Recorder()
    release = threading.Event()
    done: list[str] = []
    recorder.submit(lambda: (release.wait(10), done.append("epoch 1")))
    recorder.submit(lambda: done.append("checkpoint 1"))  # returns while epoch 1 is still writing
    assert not recorder.flush(timeout=0.2) and done == [] and recorder.pending == 2
    release.set()
    assert recorder.flush(timeout=10)
    assert done == ["epoch 1", "checkpoint 1"] and recorder.pending == 0


def test_a_failing_write_is_logged_and_the_ones_after_it_still_run(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    done: list[int] = []

    def broken() -> None:
        raise RuntimeError("database gone")

    recorder.submit(broken)
    recorder.submit(lambda: done.append(2))
    assert recorder.close(timeout=10)
    assert done == [2] and "database gone" in caplog.text


def test_nothing_is_accepted_once_closed_for_the_outcome() -> None:
    recorder = Recorder()
    recorder.close(timeout=10)
    with pytest.raises(RuntimeError, match="closed"):
        recorder.submit(lambda: None)
