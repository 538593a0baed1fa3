"""The bounded process pool: work runs in another process, a full pool refuses at once, work past
its budget answers Busy and its process is killed (and replaced), errors come back as raised."""

import asyncio
import os
import time
from pathlib import Path

import pytest

from app.cpu_pool import Busy, PoolFull, ProcessPool
from app.errors import InvalidInput
from app.ml.spec import SpecError


def pid() -> int:
    return os.getpid()


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def spin_forever(pid_file: str) -> None:
    with open(pid_file, "w") as out:
        out.write(str(os.getpid()))
    while True:  # pure CPU, never yields: only killing the process ends it
        pass


def refuse_spec() -> None:
    raise SpecError("model.layers[3].units", "must be positive")


def refuse_input() -> None:
    raise InvalidInput("fit.epochs: too many", detail=[{"loc": ["fit", "epochs"], "msg": "too many"}])


def alive(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not yet reaped) is not running either
        with open(f"/proc/{process_id}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_work_runs_in_another_process() -> None:
    async def scenario() -> int:
        return await ProcessPool(processes=1, queue=0, budget_s=60).run("work", pid)

    assert asyncio.run(scenario()) != os.getpid()


def test_errors_come_back_as_raised() -> None:
    async def scenario() -> tuple[SpecError, InvalidInput]:
        pool = ProcessPool(processes=1, queue=1, budget_s=60)
        with pytest.raises(SpecError) as spec:
            await pool.run("spec checks", refuse_spec)
        with pytest.raises(InvalidInput) as invalid:
            await pool.run("spec checks", refuse_input)
        return spec.value, invalid.value

    spec, invalid = asyncio.run(scenario())

    assert (spec.path, spec.message) == ("model.layers[3].units", "must be positive")
    assert invalid.status_code == 422 and invalid.detail == [{"loc": ["fit", "epochs"], "msg": "too many"}]


def test_a_full_pool_refuses_at_once() -> None:
    async def scenario() -> PoolFull:
        pool = ProcessPool(processes=1, queue=1, budget_s=60)
        running = [asyncio.ensure_future(pool.run("spec checks", sleep_then_pid, 1.0)) for _ in range(2)]
        await asyncio.sleep(0)
        try:
            with pytest.raises(PoolFull) as refused:
                await pool.run("spec checks", pid)
        finally:
            await asyncio.gather(*running)
        assert pool.admitted == 0
        return refused.value

    refused = asyncio.run(scenario())

    assert refused.status_code == 503 and refused.headers == {"Retry-After": "1"}
    assert "spec checks" in refused.message


def test_work_past_its_budget_is_a_503_and_its_process_is_killed(tmp_path: os.PathLike[str]) -> None:
    pid_file = os.path.join(tmp_path, "pid")

    async def scenario() -> tuple[Busy, int]:
        pool = ProcessPool(processes=1, queue=0, budget_s=1.0)
        await pool.run("warm-up", pid)  # the process is started: the budget is the work's own
        started = time.monotonic()
        with pytest.raises(Busy) as late:
            await pool.run("spec checks", spin_forever, pid_file)
        assert time.monotonic() - started < 30  # the budget, not the work, ended the wait
        for _ in range(100):  # the slot comes back once the process is gone
            if pool.admitted == 0:
                break
            await asyncio.sleep(0.1)
        assert pool.admitted == 0
        replacement = await pool.run("work", pid)  # and the pool goes on, with a new process
        return late.value, replacement

    late, replacement = asyncio.run(scenario())

    spinner = int(Path(pid_file).read_text())
    assert late.status_code == 503 and "budget of 1 s" in late.message
    deadline = time.monotonic() + 10
    while alive(spinner) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(spinner)
    assert replacement != spinner


def slow_start() -> None:
    time.sleep(2)


def test_a_pool_is_not_ready_while_its_processes_start_and_ready_once_they_have() -> None:
    pool = ProcessPool(processes=1, queue=0, budget_s=30, warm_up="tests.unit.test_process_pool:slow_start")
    assert pool.readiness() == "ok"  # never warmed: its first piece of work starts it

    pool.warm()

    assert pool.readiness().startswith("starting")
    deadline = time.monotonic() + 60
    while pool.readiness() != "ok" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pool.readiness() == "ok"
