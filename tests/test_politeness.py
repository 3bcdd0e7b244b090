"""HostLimiter: per-host concurrency and start gaps, crawl-delay, pauses; hosts independent. Real time, with slack."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from mcp_web_ingest.crawl.politeness import HostLimiter, host_key


async def _run(limiter: HostLimiter, urls: list[str], hold: float = 0.0) -> dict[str, list[tuple[float, float]]]:
    """Enter a slot for each URL concurrently; returns host → [(start, end)] in start order."""
    spans: dict[str, list[tuple[float, float]]] = {}

    async def one(url: str) -> None:
        async with limiter.slot(url):
            start = time.monotonic()
            await asyncio.sleep(hold)
            spans.setdefault(host_key(url), []).append((start, time.monotonic()))

    await asyncio.gather(*(one(u) for u in urls))
    return {k: sorted(v) for k, v in spans.items()}


def _gaps(spans: list[tuple[float, float]]) -> list[float]:
    return [b[0] - a[0] for a, b in itertools.pairwise(spans)]


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("http://Example.COM/a", "example.com"),
        ("https://h:8443/x?y", "h:8443"),
        ("http://user:pw@h/x", "h"),
        ("H.example", "h.example"),
    ],
)
def test_host_key(value: str, key: str) -> None:
    assert host_key(value) == key


async def test_min_gap_between_starts() -> None:
    limiter = HostLimiter(per_host_concurrency=4, requests_per_second=20)  # 0.05 s apart
    spans = await _run(limiter, [f"http://a.test/{i}" for i in range(6)])
    assert min(_gaps(spans["a.test"])) >= 0.05 * 0.9


async def test_concurrency_cap() -> None:
    limiter = HostLimiter(per_host_concurrency=2, requests_per_second=None)
    spans = await _run(limiter, [f"http://a.test/{i}" for i in range(6)], hold=0.05)
    assert _max_overlap(spans["a.test"]) == 2
    assert limiter.active("a.test") == 0


async def test_crawl_delay_slower_than_rate_wins() -> None:
    limiter = HostLimiter(per_host_concurrency=4, requests_per_second=100)
    limiter.set_crawl_delay("http://a.test/robots.txt", 0.1)
    assert limiter.interval("a.test") == pytest.approx(0.1)
    assert limiter.interval("b.test") == pytest.approx(0.01)
    spans = await _run(limiter, [f"http://a.test/{i}" for i in range(4)])
    assert min(_gaps(spans["a.test"])) >= 0.1 * 0.9


@pytest.mark.parametrize(("delay", "interval"), [(None, 0.5), (0, 0.5), (0.1, 0.5), (2.0, 2.0), (3600, 5.0)])
def test_interval_rules(delay: float | None, interval: float) -> None:
    limiter = HostLimiter(requests_per_second=2, max_crawl_delay_s=5)
    limiter.set_crawl_delay("h", 1.0)
    limiter.set_crawl_delay("h", delay)  # None or 0 clears it
    assert limiter.interval("h") == pytest.approx(interval)


async def test_hosts_do_not_wait_for_each_other() -> None:
    limiter = HostLimiter(per_host_concurrency=1, requests_per_second=5)  # 0.2 s apart per host
    started = time.monotonic()
    spans = await _run(limiter, [f"http://{h}.test/{i}" for i in range(3) for h in ("a", "b", "c")])
    elapsed = time.monotonic() - started
    for host in ("a.test", "b.test", "c.test"):
        assert min(_gaps(spans[host])) >= 0.2 * 0.9
        assert spans[host][0][0] - started < 0.1  # each host's first request starts at once
    assert elapsed < 9 * 0.2  # the hosts ran side by side, not one after another


async def test_many_hosts_leave_no_state() -> None:
    limiter = HostLimiter(per_host_concurrency=1, requests_per_second=None)
    await _run(limiter, [f"http://h{i}.test/" for i in range(2000)])
    assert len(limiter._hosts) == 0


async def test_pause_delays_next_start() -> None:
    limiter = HostLimiter(per_host_concurrency=2, requests_per_second=None)
    limiter.pause("http://a.test/x", 0.2)  # before the host has any state
    assert 0.1 < limiter.ready_in("a.test") <= 0.2
    assert limiter.ready_in("b.test") == 0
    started = time.monotonic()
    spans = await _run(limiter, ["http://a.test/1", "http://b.test/1"])
    assert spans["a.test"][0][0] - started >= 0.2 * 0.9
    assert spans["b.test"][0][0] - started < 0.1


async def test_pause_while_waiting_extends_the_wait() -> None:
    """A 429 on one request pauses the host for the requests already queued behind it."""
    limiter = HostLimiter(per_host_concurrency=1, requests_per_second=10)
    started = time.monotonic()
    order: list[tuple[str, float]] = []

    async def first() -> None:
        async with limiter.slot("http://a.test/1"):
            order.append(("1", time.monotonic() - started))
            limiter.pause("a.test", 0.3)  # e.g. Retry-After: the server asked us to wait

    async def second() -> None:
        async with limiter.slot("http://a.test/2"):
            order.append(("2", time.monotonic() - started))

    await asyncio.gather(first(), second())
    assert [name for name, _ in order] == ["1", "2"]
    assert order[1][1] >= 0.3 * 0.9


async def test_pause_never_shortens() -> None:
    limiter = HostLimiter()
    limiter.pause("a.test", 10)
    limiter.pause("a.test", 1)
    assert limiter.ready_in("a.test") > 9


async def test_fifo_within_a_host() -> None:
    limiter = HostLimiter(per_host_concurrency=1, requests_per_second=100)
    order: list[int] = []

    async def one(i: int) -> None:
        async with limiter.slot("http://a.test/"):
            order.append(i)

    await asyncio.gather(*(one(i) for i in range(8)))
    assert order == list(range(8))


async def test_cancelled_waiter_releases_nothing_it_did_not_hold() -> None:
    limiter = HostLimiter(per_host_concurrency=1, requests_per_second=2)  # 0.5 s apart
    async with limiter.slot("http://a.test/1"):
        pass
    waiter = asyncio.create_task(_run(limiter, ["http://a.test/2"]))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.active("a.test") == 0
    spans = await _run(limiter, ["http://a.test/3"])
    assert len(spans["a.test"]) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"per_host_concurrency": 0}, "at least 1"), ({"requests_per_second": 0}, "positive")]
)
def test_invalid_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HostLimiter(**kwargs)
