"""The bounded pools that run requests' CPU-heavy work off the event loop, under a time budget:
threads (CpuPool: work that reads and writes the database) and processes (ProcessPool: pure
computation that would hold the GIL, spec checks above all).

A request that parses a dataset, checks a spec or decodes a large predict body would otherwise
hold the event loop (or an unbounded crowd of threads) and freeze every other request. Here the
work gets one of `cpu_workers` threads; at most `cpu_queue` more wait for one, and beyond that a
request is refused at once (503, Retry-After). A request whose work outlives its budget answers
503 while the thread finishes in the background: its slot stays taken until it really ends, so
the pool never runs more than `cpu_workers` pieces of work, whatever clients do.
"""

import asyncio
import atexit
import concurrent.futures
import contextvars
import functools
import importlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

import pebble
from pebble import ProcessExpired

from app.errors import Unavailable

P = ParamSpec("P")
T = TypeVar("T")


class Busy(Unavailable):
    """The pool is full, or a piece of work ran past its budget: retry later."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class Abandoned(Exception):
    """Raised in a pool thread by `Ticket.check`: the request gave up waiting for this work."""


class Ticket:
    """Handed to work that commits something: past its budget the request has answered 503, so
    the work must not commit (a client retrying would otherwise find two jobs or datasets)."""

    def __init__(self) -> None:
        self._abandoned = threading.Event()

    def abandon(self) -> None:
        self._abandoned.set()

    def check(self) -> None:
        """Call just before committing; raises Abandoned if the request has given up."""
        if self._abandoned.is_set():
            raise Abandoned("the request ran past its budget and was answered 503; nothing is kept")


class PoolFull(Busy):
    """Refused at the door: the work never started (its inputs are still the caller's)."""


class CpuPool:
    """`workers` threads and `queue` waiting places; `run` is called from the event loop only.

    Args:
        workers: pieces of work running at once.
        queue: pieces admitted beyond those (they wait for a thread); more are refused.
        budget_s: the default time budget of one piece, waiting included.
    """

    def __init__(self, workers: int, queue: int, budget_s: float) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self.budget_s = budget_s
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="trainyard-cpu")
        self._admitted = 0  # touched on the event loop only (done callbacks run there)

    @property
    def admitted(self) -> int:
        return self._admitted

    async def run(self, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` on the pool under the default budget; `what` names the work
        in the 503 message."""
        return await self.run_for(self.budget_s, what, fn, *args, **kwargs)

    async def run_committing(
        self, budget: float, what: str, fn: Callable[Concatenate[Ticket, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`run_for`, for work that commits: `fn(ticket, ...)` calls `ticket.check()` before its
        commit, and the ticket is abandoned when the budget runs out."""
        ticket = Ticket()
        try:
            return await self.run_for(budget, what, fn, ticket, *args, **kwargs)
        except Busy:
            ticket.abandon()
            raise

    async def run_for(self, budget: float, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`run` under a budget of its own (parsing an upload may take longer than a spec check)."""
        if self._admitted >= self.capacity:
            raise PoolFull(f"the server is busy with {self._admitted} other requests' {what}; retry shortly")
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, functools.partial(fn, *args, **kwargs))
        self._admitted += 1
        future = loop.run_in_executor(self._executor, call)
        future.add_done_callback(self._release)
        try:
            # shield: giving up on the answer must not "cancel" the future, which would release
            # the slot while the thread still runs.
            return await asyncio.wait_for(asyncio.shield(future), budget)
        except TimeoutError:
            raise Busy(
                f"{what} took longer than the budget of {budget:g} s; send less at once, or raise the budget "
                "(TRAINYARD_CPU_BUDGET_S, TRAINYARD_INGEST_BUDGET_S)",
                retry_after_s=max(1, int(budget)),
            ) from None

    def _release(self, future: "asyncio.Future[Any]") -> None:
        self._admitted -= 1
        if not future.cancelled():
            future.exception()  # marks it retrieved: an abandoned piece's error is no "lost" warning

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class ProcessPool:
    """`processes` spawned processes for the CPU-heavy work that would hold the GIL (and so every
    other request) on a thread: spec checks and their dry run. At most `queue` more pieces wait;
    beyond that a request is refused at once (503). A piece that runs past its budget answers 503
    and its process is killed (and replaced), so its memory and CPU come back at once, unlike a
    thread's.

    Each process runs `warm_up` (a module-level "module:function") when it starts (imports Keras
    and runs one tiny model, for the spec checks), so the API process itself never imports Keras
    and no request waits for that start. The budget counts a piece's own run time; waiting for a
    process is bounded by the queue, and, while the processes still start, by `START_ALLOWANCE_S`.
    One pebble pool per API process, shared by every app made in it (tests make many).
    """

    START_ALLOWANCE_S = 300.0

    def __init__(self, processes: int, queue: int, budget_s: float, warm_up: str | None = None) -> None:
        self.processes = processes
        self.capacity = processes + queue
        self.budget_s = budget_s
        self._warm_up = warm_up
        self._admitted = 0  # touched on the event loop only
        self._warming: concurrent.futures.Future[Any] | None = None

    @property
    def admitted(self) -> int:
        return self._admitted

    def warm(self) -> None:
        """Start the processes now (they import in the background; nothing waits for them)."""
        self._warming = _shared_pool(self.processes, self._warm_up).schedule(_nothing)

    def readiness(self) -> str:
        """`ok`, or why a request's work would wait for a process to start (for /readyz). A pool
        never warmed starts on its first piece of work and says "ok"."""
        if self._warming is None or (self._warming.done() and self._warming.exception() is None):
            return "ok"
        if not self._warming.done():
            return "starting (importing the model libraries)"
        return f"could not start: {self._warming.exception()}"

    async def run(self, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a pool process under the default budget. `fn` and its arguments
        are pickled: a module-level function, plain data in and out. Its exceptions come back as
        they were raised (they must pickle: app.errors' do)."""
        return await self.run_for(self.budget_s, what, fn, *args, **kwargs)

    async def run_for(self, budget: float, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._admitted >= self.capacity:
            raise PoolFull(f"the server is busy with {self._admitted} other requests' {what}; retry shortly")
        pool = _shared_pool(self.processes, self._warm_up)
        future = pool.schedule(fn, args=args, kwargs=kwargs, timeout=budget)
        self._admitted += 1
        waiting = asyncio.wrap_future(future)
        waiting.add_done_callback(self._release)
        try:
            # pebble's timeout ends the piece (and its process) `budget` seconds after it starts;
            # this one ends the wait for a process that never comes (one that cannot start).
            longest = budget * (1 + self.capacity) + self.START_ALLOWANCE_S
            return await asyncio.wait_for(asyncio.shield(waiting), longest)
        except TimeoutError:
            future.cancel()  # a running piece's process is stopped; a waiting one never starts
            raise Busy(
                f"{what} took longer than the budget of {budget:g} s; send less at once, or raise the budget "
                "(TRAINYARD_CPU_BUDGET_S)",
                retry_after_s=max(1, int(budget)),
            ) from None
        except ProcessExpired as exc:  # killed from outside: most often the kernel's OOM killer
            raise Unavailable(
                f"the process doing the {what} ended unexpectedly (exit code {exc.exitcode}; out of memory?); "
                "send a smaller request"
            ) from None
        except asyncio.CancelledError:
            future.cancel()  # the request went away: its work need not go on
            raise

    def _release(self, future: "asyncio.Future[Any]") -> None:
        self._admitted -= 1
        if not future.cancelled():
            future.exception()  # retrieved: a dropped piece's error is no "never retrieved" warning

    def call(self, budget: float, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a pool process, from a thread (one of CpuPool's, which bounds
        how many wait): the thread waits without holding the GIL while the process works. Past
        `budget` seconds of work the process is killed and Busy raised."""
        future = _shared_pool(self.processes, self._warm_up).schedule(fn, args=args, kwargs=kwargs, timeout=budget)
        try:
            return future.result()
        except TimeoutError:
            raise Busy(
                f"{what} took longer than the budget of {budget:g} s; send less at once, or raise the budget",
                retry_after_s=max(1, int(budget)),
            ) from None
        except ProcessExpired as exc:
            raise Unavailable(
                f"the process doing the {what} ended unexpectedly (exit code {exc.exitcode}; out of memory?); "
                "send less at once"
            ) from None


_pools: dict[tuple[int, str | None], pebble.ProcessPool] = {}
_pools_lock = threading.Lock()


def _shared_pool(processes: int, warm_up: str | None) -> pebble.ProcessPool:
    with _pools_lock:
        key = (processes, warm_up)
        if key not in _pools:
            # spawn: a fork would copy the API's threads, sockets and event loop into the child.
            _pools[key] = pebble.ProcessPool(
                max_workers=processes,
                initializer=_start_process,
                initargs=(warm_up, os.getpid()),
                context=multiprocessing.get_context("spawn"),
            )
            if len(_pools) == 1:
                atexit.register(_stop_pools)
        return _pools[key]


def stop_process_pools() -> None:
    """Stop every pool process now (serve's shutdown; also at interpreter exit)."""
    _stop_pools()


def _stop_pools() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.stop()
            pool.join(timeout=10)
        _pools.clear()


def _start_process(warm_up: str | None, parent: int) -> None:
    """In each pool process, once: Ctrl-C on `serve` reaches the whole process group, and the API
    process shuts its pool down itself; then the warm-up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="orphan-watch").start()
    if warm_up is not None:
        module, function = warm_up.split(":")
        getattr(importlib.import_module(module), function)()


def _exit_with_parent(parent: int) -> None:
    """A pool process whose API process died (SIGKILL, or a signal re-raised past atexit) ends
    too, instead of holding its memory as an orphan."""
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(0)


def _nothing() -> None:
    """A piece of work that only makes the pool start its processes."""
