"""Load test: N concurrent MCP clients searching over streamable HTTP for a fixed time; prints a JSON report.

Usage: python tools/load.py --url http://127.0.0.1:3000 [--clients 50] [--seconds 30] [--pid PID]
                            [--index-url URL ...] [--out report.json]

Each client opens its own MCP session on URL/mcp and calls `search` back to back with a fixed query list; one more
client re-indexes the --index-url pages in a loop (when given), as a writer beside the readers. Reported: requests,
throughput, latency percentiles, errors, the server's RSS (from /proc/<pid>/status, the pid given or found by the
listening port), the server's event-loop lag (its `event_loop_lag_seconds` histogram, read from GET /metrics before and
after the run: how late a task sleeping 100 ms woke up), and the latency of a GET /health sent every 100 ms (a
client-side proxy for the same: /health is cheap, so when it is slow the loop was busy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from mcp import Client

QUERIES = (
    "how do I install it",
    "checksum mismatch after download",
    "configure a corporate proxy",
    "build from source prerequisites",
    "upgrade to a new version",
    "retention and compaction of snapshots",
    "file format of the records",
    "troubleshooting connection errors",
)
HEALTH_INTERVAL_S = 0.1
RSS_INTERVAL_S = 0.5
GRACE_S = 60.0  # how long requests still in flight at the deadline may take before they are cancelled
LOOP_LAG_METRIC = "event_loop_lag_seconds"


@dataclass
class _Tally:
    """Latencies (ms) and errors of one kind of request."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(message[:300])


def percentiles(values: Sequence[float]) -> dict[str, float] | None:
    """p50/p95/p99/max/mean of the values (nearest rank), rounded to 0.1; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    stats = {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": ordered[-1], "mean": sum(ordered) / len(ordered)}
    return {k: round(v, 1) for k, v in stats.items()}


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB, from /proc/<pid>/status; None when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def pid_listening_on(port: int) -> int | None:
    """The pid of the process listening on a local TCP port (psutil), or None."""
    import psutil

    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    return None


async def _call(client: Client, tally: _Tally, tool: str, args: dict[str, Any]) -> None:
    started = time.perf_counter()
    try:
        result = await client.call_tool(tool, args)
    except Exception as exc:  # any failure is a data point, not a reason to stop the run
        tally.error(f"{type(exc).__name__}: {exc}")
        return
    if result.is_error:
        tally.error(f"{tool} tool error: {result.content}")
        return
    tally.latencies.append((time.perf_counter() - started) * 1000)


async def _searcher(mcp_url: str, n: int, deadline: float, tally: _Tally, queries: Sequence[str]) -> None:
    try:
        async with Client(mcp_url) as client:
            i = n
            while time.monotonic() < deadline:
                await _call(client, tally, "search", {"query": queries[i % len(queries)], "k": 5})
                i += 1
    except Exception as exc:  # a session that cannot open counts once; the other clients carry on
        tally.error(f"session: {type(exc).__name__}: {exc}")


async def _indexer(mcp_url: str, urls: Sequence[str], deadline: float, tally: _Tally) -> None:
    try:
        async with Client(mcp_url) as client:
            i = 0
            while time.monotonic() < deadline:
                await _call(client, tally, "index_web_page", {"url": urls[i % len(urls)]})
                i += 1
    except Exception as exc:
        tally.error(f"session: {type(exc).__name__}: {exc}")


async def _health_probe(base: str, deadline: float, tally: _Tally) -> None:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                async with session.get(base + "/health") as resp:
                    await resp.read()
                    if resp.status >= 500:
                        tally.error(f"/health HTTP {resp.status}")
                    else:
                        tally.latencies.append((time.perf_counter() - started) * 1000)
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.error(f"/health {type(exc).__name__}: {exc}")
            await asyncio.sleep(max(0.0, HEALTH_INTERVAL_S - (time.perf_counter() - started)))


async def scrape_metrics(base: str) -> str | None:
    """The text of GET /metrics, or None when the server does not serve it (auth, error, not ready)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(base + "/metrics") as resp,
        ):
            return await resp.text() if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


def _lag_histogram(text: str) -> tuple[list[tuple[float, float]], float, float] | None:
    """(cumulative buckets as (upper bound s, count), sum s, count) of the loop-lag histogram in a /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        if family.name != LOOP_LAG_METRIC:
            continue
        buckets: list[tuple[float, float]] = []
        total = count = 0.0
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
        return sorted(buckets), total, count
    return None


def loop_lag_between(before: str | None, after: str | None) -> dict[str, Any] | None:
    """Event-loop lag observed between two /metrics scrapes; None when the server does not measure it.

    Percentiles are bucket upper bounds in ms ("≤"); a value in the +Inf bucket reads as ">" the last finite bound.
    """
    old = _lag_histogram(before) if before else None
    new = _lag_histogram(after) if after else None
    if new is None or new[2] == 0:  # no histogram, or one nobody observes (the watcher is not running)
        return None
    old_counts = dict(old[0]) if old else {}
    buckets = [(le, n - old_counts.get(le, 0.0)) for le, n in new[0]]
    count = new[2] - (old[2] if old else 0.0)
    if count <= 0:
        return {"samples": 0}
    finite = [le for le, _ in buckets if le != float("inf")]

    def upper(q: float) -> float | str:
        for le, n in buckets:
            if n >= q * count:
                return round(le * 1000, 1) if le != float("inf") else f">{finite[-1] * 1000:g}"
        return f">{finite[-1] * 1000:g}"

    return {
        "samples": int(count),
        "mean": round((new[1] - (old[1] if old else 0.0)) / count * 1000, 2),
        "p50_le": upper(0.5),
        "p95_le": upper(0.95),
        "p99_le": upper(0.99),
        "max_le": upper(1.0),
        "over_100ms": int(count - dict(buckets).get(0.1, count)),
    }


async def _rss_sampler(pid: int, stop: asyncio.Event, samples: list[float]) -> None:
    while not stop.is_set():
        if (value := rss_mb(pid)) is not None:
            samples.append(value)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RSS_INTERVAL_S)


async def run_load(
    url: str,
    *,
    clients: int = 50,
    seconds: float = 30.0,
    pid: int | None = None,
    index_urls: Sequence[str] = (),
    queries: Sequence[str] = QUERIES,
) -> dict[str, Any]:
    """Run the load for `seconds` and return the report (see the module docstring)."""
    base = url.rstrip("/")
    if base.endswith("/mcp"):
        base = base[: -len("/mcp")]
    if pid is None:
        pid = pid_listening_on(urlsplit(base).port or 80)
    searches, indexing, health = _Tally(), _Tally(), _Tally()
    rss: list[float] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_rss_sampler(pid, stop, rss)) if pid else None
    metrics_before = await scrape_metrics(base)
    started = time.monotonic()
    deadline = started + seconds
    work = [_searcher(base + "/mcp", n, deadline, searches, queries) for n in range(clients)]
    if index_urls:
        work.append(_indexer(base + "/mcp", index_urls, deadline, indexing))
    work.append(_health_probe(base, deadline, health))
    try:
        await asyncio.wait_for(asyncio.gather(*work), seconds + GRACE_S)
    except TimeoutError:
        searches.error(f"requests still running {GRACE_S:.0f} s after the deadline were cancelled")
    elapsed = time.monotonic() - started
    stop.set()
    if sampler is not None:
        await sampler
    metrics_after = await scrape_metrics(base)
    return {
        "url": base,
        "clients": clients,
        "seconds": seconds,
        "elapsed_s": round(elapsed, 2),
        "requests": len(searches.latencies),
        "throughput_rps": round(len(searches.latencies) / elapsed, 1),
        "latency_ms": percentiles(searches.latencies),
        "errors": searches.errors,
        "error_samples": searches.samples,
        "index": {
            "calls": len(indexing.latencies),
            "errors": indexing.errors,
            "error_samples": indexing.samples,
            "latency_ms": percentiles(indexing.latencies),
        },
        "server_pid": pid,
        "rss_mb": {"start": rss[0], "peak": max(rss), "end": rss[-1], "samples": len(rss)} if rss else None,
        "loop_lag_ms": loop_lag_between(metrics_before, metrics_after),
        "health_latency_ms": {**(percentiles(health.latencies) or {}), "samples": len(health.latencies)},
        "health_errors": health.errors,
        "note": (
            "loop_lag_ms: the server's event_loop_lag_seconds histogram between /metrics scrapes before and after the "
            "run (percentiles are bucket upper bounds; null when the server does not measure it); health_latency_ms "
            "(GET /health every 100 ms, client side) is a proxy for the same lag"
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; exit status 1 when any request failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="server base URL (or its /mcp endpoint)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent MCP search clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to send requests")
    parser.add_argument("--pid", type=int, help="server pid for RSS (default: found by the listening port)")
    parser.add_argument("--index-url", action="append", default=[], help="page one extra client re-indexes")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)
    report = asyncio.run(
        run_load(args.url, clients=args.clients, seconds=args.seconds, pid=args.pid, index_urls=args.index_url)
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if report["errors"] or report["index"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
