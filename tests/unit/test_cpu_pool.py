"""The bounded CPU pool: work runs off the event loop, a full pool refuses at once, work past its
budget answers Busy while its slot stays taken, and work that commits learns it was abandoned."""

import asyncio
import threading

import pytest

from app.cpu_pool import Abandoned, Busy, CpuPool, PoolFull, Ticket


def test_work_runs_on_a_pool_thread_not_the_event_loop() -> None:
    async def scenario() -> tuple[int, int]:
        pool = CpuPool(workers=1, queue=0, budget_s=30)
        return threading.get_ident(), await pool.run("work", threading.get_ident)

    loop_thread, work_thread = asyncio.run(scenario())

    assert loop_thread != work_thread


def test_a_full_pool_refuses_at_once_with_retry_after() -> None:
    release = threading.Event()

    async def scenario() -> PoolFull:
        pool = CpuPool(workers=1, queue=1, budget_s=30)
        running = [asyncio.ensure_future(pool.run("parsing", release.wait)) for _ in range(2)]
        await asyncio.sleep(0)
        try:
            with pytest.raises(PoolFull) as refused:
                await pool.run("parsing", release.wait)
        finally:
            release.set()
            await asyncio.gather(*running)
        return refused.value

    refused = asyncio.run(scenario())

    assert refused.status_code == 503 and refused.headers == {"Retry-After": "1"}
    assert "parsing" in refused.message


def test_work_past_its_budget_is_a_503_and_keeps_its_slot_until_it_ends() -> None:
    release = threading.Event()

    async def scenario() -> tuple[int, int]:
        pool = CpuPool(workers=1, queue=0, budget_s=0.01)
        with pytest.raises(Busy, match="budget"):
            await pool.run("spec checks", release.wait)
        held = pool.admitted  # the thread still runs: the pool is still full
        release.set()
        while pool.admitted:
            await asyncio.sleep(0.01)
        return held, pool.admitted

    assert asyncio.run(scenario()) == (1, 0)


def test_committing_work_past_its_budget_finds_its_ticket_abandoned() -> None:
    release = threading.Event()
    outcome: list[str] = []

    def commit(ticket: Ticket) -> None:
        release.wait()
        try:
            ticket.check()
            outcome.append("committed")
        except Abandoned:
            outcome.append("abandoned")

    async def scenario() -> None:
        pool = CpuPool(workers=1, queue=0, budget_s=30)
        with pytest.raises(Busy):
            await pool.run_committing(0.01, "ingest", commit)
        release.set()
        while pool.admitted:
            await asyncio.sleep(0.01)

    asyncio.run(scenario())

    assert outcome == ["abandoned"]
