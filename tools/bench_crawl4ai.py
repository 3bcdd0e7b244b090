"""crawl4ai's own crawl + markdown rate on a list of URLs, for tools/bench.py to compare ours against.

Usage: .tools/crawl4ai-venv/bin/python tools/bench_crawl4ai.py URLS_FILE [--concurrency 8]

Runs inside crawl4ai's venv (`make crawl4ai-runner`) and imports nothing of mcp_web_ingest. HTTP only
(AsyncHTTPCrawlerStrategy, no browser), arun_many with SemaphoreDispatcher(semaphore_count=N, rate_limiter=None) and
the default markdown generator (DefaultMarkdownGenerator), cache bypassed. One page is crawled first as a warm-up (not
timed), as tools/bench.py warms our extraction workers. Prints one JSON line:
{"pages", "ok", "seconds", "pages_per_s", "cpu_s", "pages_per_cpu_s", "peak_rss_mb", "code_blocks",
"crawl4ai_version", "concurrency"} (cpu_s: this process's CPU time while crawling; crawl4ai runs in one process).
code_blocks counts fenced code blocks (pairs of ``` lines) in the markdown of every page that succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def count_code_blocks(markdown: str) -> int:
    """Fenced code blocks in markdown: pairs of lines opening and closing a ``` fence (an unclosed one is not
    counted); a ``` line inside a ~~~ block, or the reverse, is content."""
    blocks, fence = 0, ""
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if not fence:
            for mark in ("```", "~~~"):
                if stripped.startswith(mark):
                    fence = stripped[: len(stripped) - len(stripped.lstrip(mark[0]))]
                    break
        elif stripped.startswith(fence) and not stripped.rstrip().lstrip(fence[0]):
            blocks, fence = blocks + 1, ""
    return blocks


def rate(pages: int, seconds: float) -> float:
    """Pages per second, 0 when nothing was timed."""
    return round(pages / seconds, 2) if seconds > 0 else 0.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def read_urls(path: Path) -> list[str]:
    """Non-blank lines of a file."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _prepare_environment() -> str:
    """A private base directory (crawl4ai otherwise writes ~/.crawl4ai) and no cloud notice; before importing it."""
    base = os.environ.get("CRAWL4_AI_BASE_DIRECTORY") or tempfile.mkdtemp(prefix="bench-crawl4ai-")
    os.environ["CRAWL4_AI_BASE_DIRECTORY"] = base
    os.environ["CRAWL4AI_NO_CLOUD_NOTICE"] = "1"
    return base


async def crawl(urls: Sequence[str], concurrency: int) -> dict[str, Any]:
    """Crawl every URL with crawl4ai over HTTP and time it; the report dict."""
    base = _prepare_environment()
    import crawl4ai
    from crawl4ai import AsyncWebCrawler, BrowserConfig, CacheMode, CrawlerRunConfig, HTTPCrawlerConfig
    from crawl4ai.async_crawler_strategy import AsyncHTTPCrawlerStrategy
    from crawl4ai.async_dispatcher import SemaphoreDispatcher
    from crawl4ai.async_logger import AsyncLogger
    from crawl4ai.markdown_generation_strategy import DefaultMarkdownGenerator

    logger = AsyncLogger(verbose=False)
    http = HTTPCrawlerConfig(downloads_path=os.path.join(base, "downloads"))
    strategy = AsyncHTTPCrawlerStrategy(browser_config=http, logger=logger)
    config = CrawlerRunConfig(
        markdown_generator=DefaultMarkdownGenerator(), cache_mode=CacheMode.BYPASS, verbose=False, stream=False
    )
    async with AsyncWebCrawler(
        crawler_strategy=strategy, config=BrowserConfig(verbose=False), base_directory=base, logger=logger
    ) as crawler:
        if urls:
            await crawler.arun(urls[0], config=config)  # warm-up: lazy imports, the HTTP session
        dispatcher = SemaphoreDispatcher(semaphore_count=concurrency, rate_limiter=None)
        started, cpu = time.perf_counter(), time.process_time()
        results = await crawler.arun_many(list(urls), config=config, dispatcher=dispatcher)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    ok = [r for r in results if r.success]
    return {
        "pages": len(urls),
        "ok": len(ok),
        "seconds": round(seconds, 2),
        "pages_per_s": rate(len(ok), seconds),
        "cpu_s": round(cpu, 2),
        "pages_per_cpu_s": rate(len(ok), cpu),
        "peak_rss_mb": peak_rss_mb(),
        "code_blocks": sum(count_code_blocks(str(r.markdown or "")) for r in ok),
        "crawl4ai_version": crawl4ai.__version__.__version__,
        "concurrency": concurrency,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: the JSON line on stdout, anything crawl4ai prints goes to stderr."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("urls", type=Path, help="file of URLs, one per line")
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args(argv)
    out = sys.stdout
    sys.stdout = sys.stderr  # a stray print (progress, notices) must not corrupt the JSON line
    try:
        report = asyncio.run(crawl(read_urls(args.urls), max(1, args.concurrency)))
    finally:
        sys.stdout = out
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
