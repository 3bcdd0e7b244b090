"""Per-host politeness: a concurrency cap, a minimum gap between request starts, and pauses for Retry-After."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["HostLimiter", "host_key"]


def host_key(url_or_host: str) -> str:
    """The politeness key of a URL or host: lower-case host[:port] ("http://H:8080/x" → "h:8080")."""
    if "://" in url_or_host:
        try:
            return urlsplit(url_or_host).netloc.rpartition("@")[2].lower()
        except ValueError:
            pass
    return url_or_host.lower()


@dataclass
class _Host:
    """The mutable state of one host."""

    slots: asyncio.Semaphore
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)  # FIFO: waiters start in arrival order
    next_start: float = 0.0  # earliest monotonic time the next request may start
    paused_until: float = 0.0
    users: int = 0  # tasks inside or waiting for slot(); the state may be dropped at 0


class HostLimiter:
    """Limits requests per host: ``async with limiter.slot(url): ...`` waits for a free slot and the host's gap.

    Hosts are independent, so a slow or paused host never delays another one; which host to ask next is the
    frontier's choice (``ready_in`` tells it how long each host would make it wait).
    """

    def __init__(
        self,
        *,
        per_host_concurrency: int = 2,
        requests_per_second: float | None = 2.0,
        max_crawl_delay_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_host_concurrency < 1:
            raise ValueError("per_host_concurrency must be at least 1")
        if requests_per_second is not None and requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive (or None for no rate limit)")
        self._concurrency = per_host_concurrency
        self._min_gap = 1.0 / requests_per_second if requests_per_second else 0.0
        self._max_delay = max_crawl_delay_s
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._delays: dict[str, float] = {}  # robots.txt crawl-delay per host, kept when idle state is dropped
        self._pauses: dict[str, float] = {}  # pauses set on hosts with no state yet

    def set_crawl_delay(self, url_or_host: str, seconds: float | None) -> None:
        """Apply a robots.txt Crawl-delay to a host (capped at max_crawl_delay_s so one file cannot stall a crawl)."""
        key = host_key(url_or_host)
        if seconds is None or seconds <= 0:
            self._delays.pop(key, None)
        else:
            self._delays[key] = min(seconds, self._max_delay)

    def interval(self, url_or_host: str) -> float:
        """Seconds between request starts on a host: the rate limit or its crawl-delay, whichever is slower."""
        return max(self._min_gap, self._delays.get(host_key(url_or_host), 0.0))

    def pause(self, url_or_host: str, seconds: float) -> None:
        """Start no request on the host for ``seconds`` from now (429/503 Retry-After); never shortens a pause."""
        key = host_key(url_or_host)
        until = self._clock() + max(0.0, seconds)
        state = self._hosts.get(key)
        if state is not None:
            state.paused_until = max(state.paused_until, until)
        else:
            self._pauses[key] = max(self._pauses.get(key, 0.0), until)

    def ready_in(self, url_or_host: str) -> float:
        """Seconds until a request to the host could start if a slot were free (0 when it could start now)."""
        key = host_key(url_or_host)
        state = self._hosts.get(key)
        start = max(state.next_start, state.paused_until) if state else self._pauses.get(key, 0.0)
        return max(0.0, start - self._clock())

    def active(self, url_or_host: str) -> int:
        """Tasks currently inside or waiting for a slot on the host."""
        state = self._hosts.get(host_key(url_or_host))
        return state.users if state else 0

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """Hold one of the host's concurrent slots, entered no sooner than the host's gap and pause allow."""
        key = host_key(url)
        state = self._hosts.get(key)
        if state is None:
            if len(self._hosts) >= 1024:
                self._sweep()
            state = self._hosts[key] = _Host(asyncio.Semaphore(self._concurrency))
            state.paused_until = self._pauses.pop(key, 0.0)
        state.users += 1
        try:
            async with state.slots:
                async with state.gate:
                    # Sleep exactly until the gap/pause ends, then re-check: a pause may have been set meanwhile.
                    while (wait := max(state.next_start, state.paused_until) - self._clock()) > 0:  # noqa: ASYNC110
                        await asyncio.sleep(wait)
                    state.next_start = self._clock() + self.interval(key)
                yield
        finally:
            state.users -= 1
            if state.users == 0 and max(state.next_start, state.paused_until) <= self._clock():
                # Nothing left to remember: dropping idle hosts keeps memory flat on crawls over many hosts.
                self._hosts.pop(key, None)

    def _sweep(self) -> None:
        """Drop idle hosts whose gap and pause have passed (those left behind when their gap was still running)."""
        now = self._clock()
        for key in [k for k, s in self._hosts.items() if s.users == 0 and max(s.next_start, s.paused_until) <= now]:
            del self._hosts[key]
