"""Responsiveness under a hostile crawl: /health and search latency while the real server crawls a hostile site.

Usage: python tools/bench_hostile.py [--scale 1.0] [--max-pages 50] [--max-depth 2] [--flood 300]
                                     [--data-dir .data/bench/hostile] [--no-fresh] [--out report.json]

Serves a hostile site on 127.0.0.1 (in a thread): 100k nested <div>s, 50k nested lists, deep nested layout tables,
a 10 MB page of ~500k links, a page linking to a path built to make backtracking regexes explode, script-link
spellings, and ordinary pages linking to all of those (--scale shrinks the sizes). Starts `mcp-web-ingest serve` as a
subprocess on a fresh DATA_DIR, measures GET /health idle for a few seconds, then crawls the site through the MCP
tool (include patterns "(a+)+$" and ".*") while it sends GET /health (from its own thread) and a `search` call every
100 ms, and floods `initialize` calls from another loopback address. Reports latency percentiles, the crawl outcome
(per hostile page and failure reasons), the server's peak RSS, its event-loop lag histogram and the load average.
It reports; it never fails on a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import aiohttp
import psutil
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.eval import prepare_environment
from tools.hostile_site import MARKER, hostile_pages, serve_site
from tools.load import loop_lag_between, percentiles, scrape_metrics

T = TypeVar("T")
CLI = str(Path(sys.executable).parent / "mcp-web-ingest")
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
FLOOD_ADDRESS = "127.0.0.9"  # its own address: the per-client session cap must not evict the probes' sessions


@dataclass(frozen=True)
class Options:
    """What one run measures."""

    scale: float = 1.0
    max_depth: int = 2
    max_pages: int = 50
    ordinary: int = 10  # ordinary pages linked from the start page
    interval: float = 0.1  # seconds between /health and search probes
    baseline: float = 5.0  # seconds probed before the crawl
    flood: int = 300
    flood_concurrency: int = 50
    crawl_timeout: float = 900.0  # seconds before the crawl is cancelled
    data_dir: Path = Path(".data/bench/hostile")
    fresh: bool = True


# --- the server -------------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(data_dir: Path, log: Path) -> tuple[asyncio.subprocess.Process, str]:
    """`mcp-web-ingest serve` on a free port, once GET /health answers 200 (180 s at most): (process, base URL)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MCP_", "EMBEDDING_"))}
    env.update(DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", LOG_LEVEL="WARNING", ALLOW_PRIVATE_NETWORKS="true")
    with log.open("wb") as err:  # a file, not a pipe: nobody reads it during the run, and a full pipe would block
        proc = await asyncio.create_subprocess_exec(
            CLI, "serve", "--port", str(port), env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as s:
        for _ in range(720):
            if proc.returncode is not None:
                tail = log.read_text(errors="replace")[-2000:]  # noqa: ASYNC240 - the server is gone; a small file
                raise RuntimeError(f"server exited early: {tail}")
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(base + "/health") as r:
                    if r.status == 200:
                        return proc, base
            await asyncio.sleep(0.25)
    await stop_server(proc)
    raise RuntimeError("server did not become healthy within 180 s")


async def stop_server(proc: asyncio.subprocess.Process, grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after grace_s."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# --- probes -----------------------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Latencies (ms) of one kind of request, and its errors."""

    ms: list[float] = field(default_factory=list)
    errors: int = 0

    def add(self, started: float, ok: bool) -> None:
        """Record one request that began at perf_counter() `started`: its latency, or an error."""
        if ok:
            self.ms.append((time.perf_counter() - started) * 1000)
        else:
            self.errors += 1

    def summary(self) -> dict[str, Any]:
        """Percentiles, sample count, errors, and how many samples took over 100 ms."""
        over = sum(v > 100 for v in self.ms)
        return {**(percentiles(self.ms) or {}), "samples": len(self.ms), "errors": self.errors, "over_100ms": over}


async def _health_loop(base: str, interval: float, stop: threading.Event, out: Samples) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        while not stop.is_set():
            started, ok = time.perf_counter(), False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(base + "/health") as resp:
                    await resp.read()
                    ok = resp.status == 200
            out.add(started, ok)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))


async def _search_loop(client: Client, interval: float, stop: asyncio.Event, out: Samples) -> None:
    while not stop.is_set():
        started, ok = time.perf_counter(), False
        with contextlib.suppress(Exception):  # a failed call is a data point, not a reason to stop probing
            ok = not (await client.call_tool("search", {"query": f"{MARKER} widget gears", "k": 5})).is_error
        out.add(started, ok)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.perf_counter() - started)))


async def probed(base: str, searcher: Client, interval: float, work: Awaitable[T]) -> tuple[T, Samples, Samples]:
    """Await `work` while GET /health (from a thread of its own, so this process's other work cannot delay it) and a
    `search` call go out every `interval` s (back to back when one takes longer): (result, /health, search)."""
    health, search, stop, halt = Samples(), Samples(), threading.Event(), asyncio.Event()
    thread = threading.Thread(target=asyncio.run, args=(_health_loop(base, interval, stop, health),), daemon=True)
    thread.start()
    task = asyncio.create_task(_search_loop(searcher, interval, halt, search))
    try:
        result = await work
    finally:
        stop.set()
        halt.set()
        await task
        await asyncio.to_thread(thread.join, 60)
    return result, health, search


async def flood_initialize(base: str, calls: int, concurrency: int) -> dict[str, Any]:
    """`calls` MCP initialize requests from FLOOD_ADDRESS, `concurrency` at a time: status counts and latency."""
    statuses: collections.Counter[str] = collections.Counter()
    ms: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(local_addr=(FLOOD_ADDRESS, 0), force_close=True, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as s:

        async def one() -> None:
            async with sem:
                started = time.perf_counter()
                try:
                    async with s.post(base + "/mcp", json=INITIALIZE, headers=MCP_HEADERS) as r:
                        await r.read()
                        statuses[str(r.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    statuses[type(exc).__name__] += 1
                ms.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(one() for _ in range(calls)))
    return {"calls": calls, "statuses": dict(statuses), "latency_ms": percentiles(ms)}


async def sample_rss(pid: int, stop: asyncio.Event, peaks: dict[str, float]) -> None:
    """Peak RSS (MiB) of the server process alone and with its children (extraction workers), every 0.25 s."""
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        peaks["start"] = round(proc.memory_info().rss / 2**20, 1)
        while not stop.is_set():
            with contextlib.suppress(psutil.Error):
                own = proc.memory_info().rss
                tree = own + sum(c.memory_info().rss for c in proc.children(recursive=True))
                peaks["server"] = max(peaks.get("server", 0.0), round(own / 2**20, 1))
                peaks["server_and_children"] = max(peaks.get("server_and_children", 0.0), round(tree / 2**20, 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)


# --- the crawl --------------------------------------------------------------------------------------------------


def summarise_reasons(states: Mapping[str, tuple[str, str | None]]) -> dict[str, int]:
    """Why URLs were failed or skipped, counted, with URLs and numbers blanked so that alike reasons group together."""
    counts: collections.Counter[str] = collections.Counter()
    for state, reason in states.values():
        if state in ("failed", "skipped"):
            reason = re.sub(r"https?://\S+", "<url>", reason or "")
            counts[f"{state}: " + re.sub(r"\d+(?:\.\d+)?", "N", reason)[:160]] += 1
    return dict(counts.most_common())


async def run_crawl(client: Client, start_url: str, opts: Options) -> dict[str, Any]:
    """Start the crawl through the MCP tool and follow it until it finishes (cancelled after crawl_timeout_s)."""
    started = time.perf_counter()
    args = {"url": start_url, "max_depth": opts.max_depth, "max_pages": opts.max_pages}
    res = await client.call_tool("index_web_page", {**args, "include": ["(a+)+$", ".*"], "wait_seconds": 0})
    if res.is_error or not res.structured_content:
        return {"state": "not started", "error": str(res.content)[:500]}
    job = res.structured_content["job"]
    while not job["finished"]:
        if time.perf_counter() - started > opts.crawl_timeout:
            job = (await client.call_tool("cancel_crawl", {"job_id": job["job_id"]})).structured_content
            break
        res = await client.call_tool("crawl_status", {"job_id": job["job_id"], "wait_seconds": 2})
        job = res.structured_content if not res.is_error and res.structured_content else job
    return {
        "job_id": job["job_id"],
        "state": job["state"],
        "counts": job["counts"],
        "elapsed_s": round(time.perf_counter() - started, 1),
        "notes": job.get("notes", []),
    }


async def url_states(data_dir: Path, job_id: str) -> dict[str, tuple[str, str | None]]:
    """Every URL of the job with its state and reason, from the server's database: crawl_status lists failed URLs
    only, and a page stopped by a guard (EXTRACT_TIMEOUT_S, MAX_CHUNKS_PER_PAGE) is skipped, not failed."""
    from mcp_web_ingest.config import Settings
    from mcp_web_ingest.storage.db import Database

    db = Database(Settings(_env_file=None, data_dir=data_dir, postgres_connection_string=None))  # type: ignore[call-arg]
    await db.open()
    try:
        async with db.pool.connection() as conn:
            cur = await conn.execute("SELECT url, state, reason FROM crawl_urls WHERE job_id::text = %s", (job_id,))
            return {url: (state, reason) for url, state, reason in await cur.fetchall()}
    finally:
        await db.aclose()


def page_outcomes(
    site: str, paths: Sequence[str], states: Mapping[str, tuple[str, str | None]]
) -> dict[str, dict[str, str | None]]:
    """Per hostile page: its state in the crawl ("not reached" when the crawl never queued it) and the reason."""
    by_path = {unquote(url.removeprefix(site)): s for url, s in states.items()}
    return {p: dict(zip(("state", "reason"), by_path.get(p, ("not reached", None)), strict=True)) for p in paths}


# --- the whole run ----------------------------------------------------------------------------------------------


async def crawl_and_flood(control: Client, base: str, site: str, opts: Options) -> tuple[dict, dict]:
    """The crawl, with the initialize flood sent once it is under way: (crawl outcome, flood figures)."""
    crawl = asyncio.create_task(run_crawl(control, site + "/", opts))
    await asyncio.sleep(1.0)
    flood = await flood_initialize(base, opts.flood, opts.flood_concurrency)
    return await crawl, flood


async def run_bench(opts: Options) -> dict[str, Any]:
    """Every measurement of one run; returns the report."""
    load_start = os.getloadavg()
    if opts.fresh and opts.data_dir.is_dir():
        if any(opts.data_dir.iterdir()) and not (opts.data_dir / "pgdata").is_dir():  # never wipe a stranger's folder
            raise RuntimeError(f"{opts.data_dir} is not a DATA_DIR (no pgdata/); choose another --data-dir")
        shutil.rmtree(opts.data_dir)
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    hostile = hostile_pages(opts.scale)
    peaks: dict[str, float] = {}
    with serve_site(hostile, opts.ordinary) as (site, requests):
        proc, base = await start_server(opts.data_dir, opts.data_dir / "server-stderr.log")
        stop = asyncio.Event()
        rss = asyncio.create_task(sample_rss(proc.pid, stop, peaks))
        try:
            async with Client(base + "/mcp") as control, Client(base + "/mcp") as searcher:
                await searcher.call_tool("search", {"query": "warm up"})  # loads the embedding model
                metrics_before = await scrape_metrics(base)
                _, idle, idle_search = await probed(base, searcher, opts.interval, asyncio.sleep(opts.baseline))
                work = crawl_and_flood(control, base, site, opts)
                (crawl, flood), health, search = await probed(base, searcher, opts.interval, work)
                metrics_after = await scrape_metrics(base)
                states = await url_states(opts.data_dir, crawl["job_id"]) if "job_id" in crawl else {}
        finally:
            stop.set()
            await rss
            await stop_server(proc)
    suspicious = sorted(p for p in requests if re.search(r"alert|msgbox|script:|base64", p, re.IGNORECASE))
    return {
        "scale": opts.scale,
        "site_bytes": {p: len(t.encode()) for p, t in hostile.items()},
        "crawl_args": {"max_depth": opts.max_depth, "max_pages": opts.max_pages, "include": ["(a+)+$", ".*"]},
        "cpu_count": os.cpu_count(),
        "load_avg_start": [round(v, 2) for v in load_start],
        "load_avg_end": [round(v, 2) for v in os.getloadavg()],
        "health_ms": health.summary(),
        "search_ms": search.summary(),
        "idle": {"seconds": opts.baseline, "health_ms": idle.summary(), "search_ms": idle_search.summary()},
        "flood": flood,
        "crawl": crawl | {"reasons": summarise_reasons(states)},
        "hostile_pages": page_outcomes(site, list(hostile), states),
        "site_requests": sum(requests.values()),
        "script_urls_requested": suspicious,
        "server_rss_mb": peaks,
        "loop_lag_ms": loop_lag_between(metrics_before, metrics_after),
    }


def _lat(s: Mapping[str, Any], keys: Sequence[str] = ("p50", "p95", "p99", "max")) -> str:
    return " / ".join(f"{s[k]:.1f}" for k in keys) if all(k in s for k in keys) else "–"


def markdown_table(r: Mapping[str, Any]) -> str:
    """The report as a Markdown table."""
    h, s, c, f = r["health_ms"], r["search_ms"], r["crawl"], r["flood"]
    idle, idle_s = r["idle"]["health_ms"], r["idle"]["search_ms"]
    counts = c.get("counts", {})
    lag = r["loop_lag_ms"] or {}
    rows = [
        "| measure | value | note |",
        "|---|---:|---|",
        f"| /health during the crawl, p50 / p95 / p99 / max | {_lat(h)} ms | {h['samples']} samples, "
        f"{h['over_100ms']} over 100 ms, {h['errors']} errors |",
        f"| search during the crawl, p50 / p95 / max | {_lat(s, ('p50', 'p95', 'max'))} ms | {s['samples']} calls, "
        f"{s['errors']} errors |",
        f"| idle, before the crawl: /health p50 / p95 / p99 / max | {_lat(idle)} ms | search p50 / p95 "
        f"{_lat(idle_s, ('p50', 'p95'))} ms; {idle['samples']} /health samples, {idle['over_100ms']} over 100 ms |",
        f"| {f['calls']} initialize calls (flood) | {f['statuses']} | p50 / p95 / max "
        f"{_lat(f['latency_ms'] or {}, ('p50', 'p95', 'max'))} ms |",
        f"| crawl | {c['state']} | {counts.get('indexed', 0)} indexed, {counts.get('failed', 0)} failed, "
        f"{counts.get('skipped', 0)} skipped of {counts.get('discovered', 0)} discovered in {c.get('elapsed_s')} s |",
        *(f"| crawl reason | ×{n} | {reason} |" for reason, n in c.get("reasons", {}).items()),
        *(f"| page {p[:30]} | {o['state']} | {o['reason'] or ''} |" for p, o in r["hostile_pages"].items()),
        f"| script URLs requested | {len(r['script_urls_requested'])} | of {r['site_requests']} site requests |",
        f"| server peak RSS | {r['server_rss_mb'].get('server', 0):.0f} MiB | start "
        f"{r['server_rss_mb'].get('start', 0):.0f} MiB; with extraction workers "
        f"{r['server_rss_mb'].get('server_and_children', 0):.0f} MiB |",
        f"| server loop lag mean / p99 / max | {lag.get('mean', '–')} / ≤ {lag.get('p99_le', '–')} / "
        f"≤ {lag.get('max_le', '–')} ms | {lag.get('samples', 0)} samples, {lag.get('over_100ms', 0)} over 100 ms |",
        f"| load average at start (1 / 5 / 15 min) | {' / '.join(map(str, r['load_avg_start']))} | "
        f"on {r['cpu_count']} cores; at the end {' / '.join(map(str, r['load_avg_end']))} |",
    ]
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None = None) -> tuple[Options, Path | None]:
    """Command-line options: what to measure, and where to write the JSON report."""
    d = Options()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=d.scale, help="size of the hostile pages (1.0 = full)")
    p.add_argument("--max-depth", type=int, default=d.max_depth)
    p.add_argument("--max-pages", type=int, default=d.max_pages)
    p.add_argument("--ordinary", type=int, default=d.ordinary, help="ordinary pages linked from the start page")
    p.add_argument("--interval", type=float, default=d.interval, help="seconds between /health and search probes")
    p.add_argument("--baseline", type=float, default=d.baseline, help="seconds probed before the crawl")
    p.add_argument("--flood", type=int, default=d.flood, help="initialize calls sent during the crawl")
    p.add_argument("--flood-concurrency", type=int, default=d.flood_concurrency)
    p.add_argument("--crawl-timeout", type=float, default=d.crawl_timeout, help="cancel the crawl after this")
    p.add_argument("--data-dir", type=Path, default=d.data_dir)
    p.add_argument("--fresh", action=argparse.BooleanOptionalAction, default=d.fresh, help="delete --data-dir first")
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    args = vars(p.parse_args(argv))
    out = args.pop("out")
    return Options(**args), out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run, print the table, write the JSON; exit 0 whatever the figures."""
    opts, out = parse_args(argv)
    prepare_environment()
    report = asyncio.run(run_bench(opts))
    print(markdown_table(report))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
