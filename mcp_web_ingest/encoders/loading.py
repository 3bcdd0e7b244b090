"""A model loaded once on its worker thread: started early, awaited by its first user, reported by health."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")


class BackgroundLoad(Generic[T]):
    """Runs `load` once on `executor`; `value` holds its result and `error` what it raised."""

    def __init__(self, executor: Executor, load: Callable[[], T]) -> None:
        self._executor = executor
        self._load = load
        self._future: asyncio.Future[T] | None = None
        self.value: T | None = None
        self.error: Exception | None = None

    @property
    def started(self) -> bool:
        """Whether loading has begun."""
        return self._future is not None

    def start(self) -> None:
        """Begin loading (once); needs a running event loop."""
        if self._future is None:
            self._future = asyncio.get_running_loop().run_in_executor(self._executor, self._load)
            self._future.add_done_callback(self._record)  # health sees the outcome before anyone awaits it

    def _record(self, future: asyncio.Future[T]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            self.value = future.result()
        elif isinstance(exc, Exception):
            self.error = exc

    async def get(self) -> T:
        """The loaded value, once loading is done; raises what loading raised."""
        self.start()
        assert self._future is not None
        try:
            # shield: a caller that gives up (a search timing out) does not cancel the load for the others.
            self.value = await asyncio.shield(self._future)
        except Exception as exc:
            self.error = exc
            raise
        return self.value

    async def settle(self) -> None:
        """Wait until a load in progress ends, whatever its outcome (a running load cannot be interrupted)."""
        if self._future is not None and not self._future.done():
            await asyncio.gather(self._future, return_exceptions=True)
