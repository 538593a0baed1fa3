"""Dynamic batching: concurrent requests to one version share a single inference call.

Everything but the inference itself runs on the event loop, so the queue needs no lock. For a
model run inline, the first request of a loop turn runs at once and the requests that arrive
later in the same turn run as one batch when the turn ends; for a model run in a thread, a
request that finds it idle runs at the next turn with every request that arrived meanwhile, and
requests that arrive while a batch runs form the next batch. Neither adds latency when the
service is quiet. `max_latency_ms` > 0 additionally holds a
batch open that long to let it fill. A model whose full batch runs in well under a millisecond
(ONNX Runtime on small models) runs inline on the loop: a thread hop would cost more than the
inference. Slower models run on the batcher's own thread while the loop keeps serving.
"""

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from app.errors import TooManyRequests

RunBatch = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass
class _Pending:
    inputs: list[np.ndarray]
    rows: int
    future: asyncio.Future[list[np.ndarray]]


class Batcher:
    """Queues requests for one model version and runs them in batches.

    Args:
        run: the model's inference on one batch (one array per input → one per output).
        inline: run on the event loop instead of the batcher's thread.
        on_batch: called with the rows of each batch run (a metrics hook).
    """

    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch_size: int,
        max_latency_ms: float,
        max_queued_rows: int,
        inline: bool,
        on_batch: Callable[[float], None] | None = None,
    ) -> None:
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000
        self.max_queued_rows = max_queued_rows
        self.inline = inline
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._scheduled = False
        self._running = False
        self._turn_busy = False
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def submit(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run `inputs` (a batch of one request) in some batch; returns this request's rows."""
        rows = int(inputs[0].shape[0])
        if self._queued_rows and self._queued_rows + rows > self.max_queued_rows:
            raise TooManyRequests(
                f"the model's queue is full ({self._queued_rows} rows waiting, at most "
                f"{self.max_queued_rows}); retry shortly or send fewer rows per request"
            )
        loop = asyncio.get_running_loop()
        if self.inline and not self.max_latency_s and not self._turn_busy:
            # The first request of a loop turn runs now, with no hop through the loop; those
            # that arrive later in the same turn are batched when it ends (`_end_turn`).
            self._turn_busy = True
            loop.call_soon(self._end_turn)
            if self._on_batch is not None:
                self._on_batch(rows)
            return self._run(inputs)
        pending = _Pending(inputs, rows, loop.create_future())
        self._queue.append(pending)
        self._queued_rows += rows
        if not self._running and not self._scheduled:
            self._scheduled = True
            if self.max_latency_s > 0 and self._queued_rows < self.max_batch_size:
                loop.call_later(self.max_latency_s, self._flush)
            else:
                loop.call_soon(self._flush)
        elif self._scheduled and self._queued_rows >= self.max_batch_size and self.max_latency_s:
            loop.call_soon(self._flush)  # full before its deadline: go now (the timer finds
            # nothing to do, or the next batch, which is then at most max_latency late)
        return await pending.future

    def _end_turn(self) -> None:
        self._turn_busy = False
        self._flush()

    def _take_batch(self) -> list[_Pending]:
        batch = [self._queue.popleft()]
        rows = batch[0].rows
        while self._queue and rows + self._queue[0].rows <= self.max_batch_size:
            item = self._queue.popleft()
            batch.append(item)
            rows += item.rows
        self._queued_rows -= rows
        return batch

    def _flush(self) -> None:
        self._scheduled = False
        if self._running or not self._queue:
            return
        batch = self._take_batch()
        if self.inline:
            try:
                outputs = self._run_batch(batch)
            except Exception as exc:
                _fail(batch, exc)
            else:
                _deliver(batch, outputs)
            if self._queue:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
            return
        self._running = True
        asyncio.get_running_loop().create_task(self._flush_in_thread(batch))

    async def _flush_in_thread(self, batch: list[_Pending]) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self._executor, self._run_batch, batch)
        except Exception as exc:
            _fail(batch, exc)
        else:
            _deliver(batch, outputs)
        finally:
            self._running = False
        if self._queue and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)

    def _run_batch(self, batch: list[_Pending]) -> list[np.ndarray]:
        if len(batch) == 1:
            inputs = batch[0].inputs
        else:
            inputs = [np.concatenate([item.inputs[i] for item in batch]) for i in range(len(batch[0].inputs))]
        if self._on_batch is not None:
            self._on_batch(int(inputs[0].shape[0]))
        return self._run(inputs)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)


def _deliver(batch: list[_Pending], outputs: list[np.ndarray]) -> None:
    start = 0
    for item in batch:
        stop = start + item.rows
        if not item.future.done():  # the client may have gone away
            item.future.set_result([o[start:stop] for o in outputs])
        start = stop


def _fail(batch: list[_Pending], exc: Exception) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)
