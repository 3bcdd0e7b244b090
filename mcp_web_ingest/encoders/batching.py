"""Micro-batching of concurrent single-text requests (search queries) into one call of a batch function.

A caller's text joins a pending list; one drain task takes up to ``max_batch`` texts at a time and runs the batch
function on them. Texts that arrive while a batch runs (the model thread is busy) wait for the next batch, so under
load N concurrent queries cost about N / max_batch model calls instead of N. Texts submitted in the same event-loop
iteration always share a batch; ``window_s`` > 0 makes an idle batcher wait that long for more before its first call
(off by default: a 2 ms sleep cost a lone query ~5 ms on a loaded 2-core machine and batched nothing more).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from mcp_web_ingest.errors import EmbeddingError

T = TypeVar("T")

QUERY_BATCH_MAX = 64  # texts per batched model call
QUERY_BATCH_WINDOW_S = 0.0  # how long an idle batcher waits for companions before its first call
# Documents go to the model in slices this long, so a query waits for one slice at most, not for a whole page.
DOCUMENT_SLICE = 32
QUERY_PRIORITY, DOCUMENT_PRIORITY = 0, 1


class PriorityLane:
    """One model call at a time, the waiting call of lowest priority number first (queries before documents).

    A crawl embeds pages of hundreds of chunks; on one model thread a search would wait behind all of them. The lane
    hands the thread to a waiting query as soon as the current slice ends.
    """

    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def run(self, priority: int, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` when the lane is free and no call of a lower priority number is waiting."""
        await self._acquire(priority)
        try:
            return await call()
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if not self._busy:
            self._busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the lane was handed over just as the caller gave up: pass it on
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self._busy = False


class MicroBatcher(Generic[T]):
    """Coalesces concurrent `submit(text)` calls into calls of `run_batch(texts)`; results in input order.

    - An exception from `run_batch` is raised in every caller of that batch; later batches still run.
    - A cancelled caller gives up its result only: the other callers of its batch are unaffected.
    - `aclose()` fails every pending caller with EmbeddingError and never waits for a running batch.
    """

    def __init__(
        self,
        run_batch: Callable[[list[str]], Awaitable[Sequence[T]]],
        *,
        max_batch: int = QUERY_BATCH_MAX,
        window_s: float = QUERY_BATCH_WINDOW_S,
        name: str = "micro-batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.window_s = window_s
        self._name = name
        self._pending: list[tuple[str, asyncio.Future[T]]] = []
        self._drain: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0  # calls of run_batch so far
        self.items = 0  # texts in those calls

    async def submit(self, text: str) -> T:
        """The result for one text, computed in a batch with whatever else is pending."""
        if self._closed:
            raise EmbeddingError(f"{self._name} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((text, future))
        if self._drain is None or self._drain.done() or self._drain.get_loop() is not loop:
            self._drain = loop.create_task(self._drain_pending(), name=self._name)
        return await future  # cancelling the caller cancels only its own future

    async def _drain_pending(self) -> None:
        if self.window_s > 0:
            await asyncio.sleep(self.window_s)
        while self._pending:
            taken, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            batch = [(text, future) for text, future in taken if not future.done()]  # skip cancelled callers
            if not batch:
                continue
            self.batches += 1
            self.items += len(batch)
            try:
                results = await self._run_batch([text for text, _ in batch])
                if len(results) != len(batch):
                    raise EmbeddingError(f"{self._name}: {len(results)} results for {len(batch)} texts")
            except asyncio.CancelledError:  # aclose(): the callers of the running batch learn why
                _fail([future for _, future in batch], EmbeddingError(f"{self._name} was closed"))
                raise
            except Exception as exc:
                _fail([future for _, future in batch], exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        """Refuse new texts, stop the drain task and fail every caller still waiting."""
        self._closed = True
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.cancel()
            if drain.get_loop() is asyncio.get_running_loop():
                await asyncio.wait([drain])  # returns at once: the executor call is abandoned, not awaited
        pending, self._pending = self._pending, []
        _fail([future for _, future in pending], EmbeddingError(f"{self._name} was closed"))


def _fail(futures: list[asyncio.Future[T]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
