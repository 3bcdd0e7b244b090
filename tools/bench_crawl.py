"""Crawl + extract of the bench pages, ours vs crawl4ai's, and the memory and CPU sampling it uses (tools/bench.py).

Our crawl path is the runtime's fetcher, then the extraction worker pool, as the indexer does; crawl4ai's is its HTTP
crawler with its markdown generator (tools/bench_crawl4ai.py in .tools/crawl4ai-venv), on the same URLs at the same
concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from mcp_web_ingest.errors import WebIngestError
from mcp_web_ingest.ingest.extract_worker import WORKERS, extract_isolated
from tools.bench_crawl4ai import count_code_blocks, rate

ROOT = Path(__file__).resolve().parent.parent
CRAWL4AI_PYTHON = ROOT / ".tools/crawl4ai-venv/bin/python"
CRAWL4AI_SCRIPT = ROOT / "tools/bench_crawl4ai.py"
WORKER_MODULE = "mcp_web_ingest.ingest.extract_worker"


# --- memory and CPU ---------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float:
    """Current resident set size of this process in MiB (psutil when installed, else the peak)."""
    try:
        import psutil
    except ImportError:
        return peak_rss_mb()
    return round(psutil.Process().memory_info().rss / 2**20, 1)


def _workers() -> list[Any]:
    """psutil handles of this process's extraction workers (empty without psutil)."""
    try:
        import psutil
    except ImportError:
        return []
    out = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if WORKER_MODULE in " ".join(child.cmdline()):
                out.append(child)
    return out


def worker_rss_mb() -> list[float]:
    """Current RSS (MiB) of each of this process's extraction workers (empty without psutil)."""
    out = []
    for worker in _workers():
        with contextlib.suppress(Exception):
            out.append(round(worker.memory_info().rss / 2**20, 1))
    return out


def cpu_seconds() -> float:
    """CPU time so far of this process, its live extraction workers and its waited-for children (recycled workers)."""
    total = time.process_time()
    for worker in _workers():
        with contextlib.suppress(Exception):
            t = worker.cpu_times()
            total += t.user + t.system
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + children.ru_utime + children.ru_stime


@contextlib.asynccontextmanager
async def in_background(loop: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run the coroutine function ``loop`` as a task while the block runs, then cancel it."""
    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def sampling_workers(interval_s: float = 0.2) -> AsyncIterator[dict[str, float]]:
    """Sample the extraction workers' RSS every interval_s while the block runs: peak of their sum and of one."""
    peaks = {"sum": 0.0, "one": 0.0}

    async def sample() -> None:
        while True:
            rss = await asyncio.to_thread(worker_rss_mb)
            peaks["sum"] = max(peaks["sum"], round(sum(rss), 1))
            peaks["one"] = max(peaks["one"], max(rss, default=0.0))
            await asyncio.sleep(interval_s)

    async with in_background(sample):
        yield peaks


# --- crawl + extract, ours and crawl4ai's -----------------------------------------------------------------------


async def warm_extraction(timeout_s: float) -> None:
    """Start every extraction worker (one extraction each, at once) so that start-up is not timed."""
    html = "<html><head><title>warm</title></head><body><h1>Warm</h1><p>up</p><pre>x = 1</pre></body></html>"
    await asyncio.gather(
        *(asyncio.to_thread(extract_isolated, html, f"http://warm.invalid/{i}", timeout_s) for i in range(WORKERS))
    )


async def crawl_extract_ours(runtime: Any, urls: Sequence[str], concurrency: int = 8) -> dict[str, Any]:
    """Fetch with the runtime's fetcher and extract in the worker pool: pages/s, code blocks kept, workers' RSS."""
    timeout_s = runtime.settings.extract_timeout_s
    await warm_extraction(timeout_s)
    sem = asyncio.Semaphore(concurrency)
    ok, failed, blocks = 0, 0, 0

    async def one(url: str) -> None:
        nonlocal ok, failed, blocks
        async with sem:
            try:
                fetched = await runtime.fetcher.fetch(url)
                page, _links = await asyncio.to_thread(extract_isolated, fetched.text, fetched.final_url, timeout_s)
            except WebIngestError:
                failed += 1
                return
            ok += 1
            blocks += sum(count_code_blocks(s.markdown) for s in page.sections)

    async with sampling_workers() as workers:
        started, cpu = time.perf_counter(), cpu_seconds()
        await asyncio.gather(*(one(u) for u in urls))
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # only workers that exited (recycled)
    return {
        "pages": len(urls),
        "ok": ok,
        "failed": failed,
        "seconds": round(seconds, 2),
        "pages_per_s": rate(ok, seconds),
        "cpu_s": round(cpu, 2),  # the bench process (fetching, the sampler) and the extraction workers
        "pages_per_cpu_s": rate(ok, cpu),
        "code_blocks": blocks,
        "concurrency": concurrency,
        "workers": WORKERS,
        "workers_peak_rss_mb": workers["sum"] or None,  # sum over the live workers, sampled every 0.2 s
        "worker_peak_rss_mb": workers["one"] or None,
        "exited_children_max_rss_mb": round(children, 1),
        "bench_process_rss_mb": current_rss_mb(),  # fetching runs here, beside the loaded models and the database
    }


async def crawl_extract_crawl4ai(
    urls: Sequence[str], concurrency: int = 8, python: Path = CRAWL4AI_PYTHON, timeout_s: float = 1800
) -> tuple[dict[str, Any] | None, str | None]:
    """crawl4ai's rate on the same URLs (tools/bench_crawl4ai.py in its own venv): its JSON, or None and why."""
    if not usable(python):
        return None, f"{python} is missing (make crawl4ai-runner): crawl4ai was not measured"
    with tempfile.TemporaryDirectory(prefix="bench-crawl4ai-") as tmp:
        url_file = Path(tmp) / "urls.txt"
        url_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
        env = {**os.environ, "CRAWL4_AI_BASE_DIRECTORY": str(Path(tmp) / "base"), "CRAWL4AI_NO_CLOUD_NOTICE": "1"}
        proc = await asyncio.create_subprocess_exec(
            str(python), str(CRAWL4AI_SCRIPT), str(url_file), "--concurrency", str(concurrency),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None, f"crawl4ai did not finish in {timeout_s:g} s"
    lines = out.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-5:]
        return None, f"crawl4ai exited {proc.returncode}: " + " / ".join(tail)
    return json.loads(lines[-1]), None


async def crawl_extract_compare(
    runtime: Any, urls: Sequence[str], concurrency: int = 8, crawl4ai_python: Path | None = CRAWL4AI_PYTHON
) -> dict[str, Any]:
    """Ours then crawl4ai on the same URLs at the same concurrency, and ours ÷ theirs in pages/s."""
    ours = await crawl_extract_ours(runtime, urls, concurrency)
    theirs: dict[str, Any] | None = None
    note: str | None = "crawl4ai comparison skipped (--no-crawl4ai)"
    if crawl4ai_python is not None:
        theirs, note = await crawl_extract_crawl4ai(urls, concurrency, crawl4ai_python)
    return comparison(ours, theirs, note)


async def idle_comparison(
    runtime: Any, urls: Sequence[str], concurrency: int = 8, crawl4ai_python: Path | None = CRAWL4AI_PYTHON
) -> dict[str, Any]:
    """crawl_extract_compare once the models are loaded (they load in the background: not during the timing)."""
    await runtime.embedder.embed_documents(["warm-up"])
    if runtime.sparse is not None:
        await runtime.sparse.encode(["warm-up"], "document")
    load_before = round(os.getloadavg()[0], 2)
    crawl = await crawl_extract_compare(runtime, urls, concurrency, crawl4ai_python)
    return {**crawl, "load_avg_1m_before": load_before}


def comparison(ours: dict[str, Any], theirs: dict[str, Any] | None, note: str | None = None) -> dict[str, Any]:
    """The crawl_extract part of the report: both measurements, ours ÷ theirs (pages/s), why theirs is missing."""
    return {
        "ours": ours,
        "crawl4ai": theirs,
        "ratio": ratio(ours["pages_per_s"], theirs["pages_per_s"]) if theirs else None,
        "note": None if theirs else note,
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


def usable(python: Path) -> bool:
    """Whether an interpreter exists at this path."""
    return python.exists()


def ratio(a: float, b: float) -> float | None:
    """a ÷ b rounded to 2 places, None when b is 0."""
    return round(a / b, 2) if b else None
