"""Crawl regexes cannot freeze the server: RE2 matching off the event loop, capped pattern lists, clear refusals."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from mcp import Client

from mcp_web_ingest.crawl.jobs import CrawlParams
from mcp_web_ingest.crawl.scope import MAX_PATTERNS
from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.interface.server import create_server
from mcp_web_ingest.runtime import Runtime, RuntimeHolder

from .site import serve_site

EVIL_PATH = "/" + "a" * 27 + "!"  # with Python's re, '(a+)+$' takes ~16 s on this, doubling per extra 'a'
GOOD_PATH = "/aaaa"
MAX_LAG_S = 1.0  # loose: the test machine is small and shared; the unguarded crawl froze the loop for 16 s


def _page(title: str, links: list[str]) -> str:
    anchors = "".join(f'<li><a href="{html.escape(h)}">{html.escape(h)}</a></li>' for h in links)
    text = " ".join(["The zorblax manual explains how the widget frobnicates its gears in detail."] * 8)
    body = f"<main><h1>{title}</h1><p>{text}</p><ul>{anchors}</ul></main>"
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>"


async def _handler(request: web.Request) -> web.Response:
    links = [EVIL_PATH, GOOD_PATH, "/b"] if request.path == "/" else []
    return web.Response(text=_page(f"Page {request.path}", links), content_type="text/html")


@pytest.fixture
async def evil_site(clean: Runtime) -> AsyncIterator[str]:
    """A site on 127.0.0.1 whose front page links to a URL built to make backtracking regexes explode."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", _handler)
    async with serve_site(app) as url:
        yield url


async def _max_loop_lag(stop: asyncio.Event) -> float:
    """The longest the event loop was late to wake a task sleeping 20 ms, until ``stop`` is set."""
    worst = 0.0
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.02)
        worst = max(worst, time.perf_counter() - t - 0.02)
    return worst


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|a)*$", "(a*)*b"])
async def test_evil_include_pattern_keeps_the_loop_responsive(clean: Runtime, evil_site: str, pattern: str) -> None:
    stop = asyncio.Event()
    lag = asyncio.create_task(_max_loop_lag(stop))
    started = time.perf_counter()
    params = CrawlParams(max_depth=1, max_pages=50, include=(pattern,), use_sitemap=False)
    job_id = await clean.crawler.start(f"{evil_site}/", params)
    status = await clean.crawler.wait(job_id, 120)
    elapsed = time.perf_counter() - started
    stop.set()
    worst = await lag
    assert status.state == "done", status
    assert worst < MAX_LAG_S, f"event loop blocked for {worst:.2f} s"
    assert elapsed < 60, elapsed
    async with clean.db.pool.connection() as conn:
        cur = await conn.execute("SELECT url FROM crawl_urls WHERE job_id::text = %s", (job_id,))
        urls = {u.removeprefix(evil_site) for (u,) in await cur.fetchall()}
    # RE2 gives the answers re would: the evil URL matches only '(a|a)*$' (empty match at the end).
    assert (EVIL_PATH in urls) is (pattern == "(a|a)*$")
    assert (GOOD_PATH in urls) is (pattern != "(a*)*b")


async def test_thousands_of_patterns_are_refused_quickly(clean: Runtime, evil_site: str) -> None:
    started = time.perf_counter()
    many = tuple(f"/section-{i}/" for i in range(10_000))
    with pytest.raises(InvalidInputError, match=f"Too many exclude patterns: 10000; the limit is {MAX_PATTERNS}"):
        await clean.crawler.start(f"{evil_site}/", CrawlParams(max_depth=1, max_pages=5, exclude=many))
    with pytest.raises(InvalidInputError, match="too complex"):
        await clean.crawler.start(f"{evil_site}/", CrawlParams(max_depth=1, max_pages=5, include=("a.{999}",)))
    assert time.perf_counter() - started < 1.0


async def test_the_limits_allow_a_full_list_of_ordinary_patterns(clean: Runtime, evil_site: str) -> None:
    exclude = (*(rf"/section-{i}/page-\d+\.html$" for i in range(MAX_PATTERNS - 1)), r"/b$")
    params = CrawlParams(max_depth=1, max_pages=50, exclude=exclude, use_sitemap=False)
    status = await clean.crawler.wait(await clean.crawler.start(f"{evil_site}/", params), 120)
    assert status.state == "done", status
    async with clean.db.pool.connection() as conn:
        cur = await conn.execute("SELECT url, state, reason FROM crawl_urls WHERE job_id::text = %s", (status.job_id,))
        rows = {u.removeprefix(evil_site): (s, r) for u, s, r in await cur.fetchall()}
    assert "/b" not in rows and rows[GOOD_PATH][0] == "indexed"


async def test_a_stored_job_with_a_refused_pattern_fails_cleanly(clean: Runtime, evil_site: str) -> None:
    # Jobs persist their patterns; one stored before these limits must fail with the reason, not crash its task.
    collection_id = await clean.store.catalog.ensure_collection("default")
    params = CrawlParams(max_depth=1, max_pages=5, include=(r"(a)\1",), use_sitemap=False)
    job_id = await clean.jobs.create(collection_id, "crawl", f"{evil_site}/", params)
    await clean.jobs.admit(job_id, [(f"{evil_site}/", 0, "start", None)], 5)
    await clean.crawler.status(job_id)  # an orphaned unfinished job: resumed here
    status = await clean.crawler.wait(job_id, 30)
    assert status.state == "failed"
    job = await clean.jobs.get(job_id)
    assert job is not None and "backreferences" in (job.error or "")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"include": [r"(a)\1"]}, "Unsupported include regular expression"),
        ({"exclude": ["(?<=/)docs"]}, "lookarounds"),
        ({"exclude": [f"x{i}" for i in range(MAX_PATTERNS + 1)]}, "Too many exclude patterns"),
        ({"include": ["a" * 1001]}, "the limit is 1000"),
    ],
)
async def test_refusals_reach_the_mcp_client(clean: Runtime, evil_site: str, args: dict, fragment: str) -> None:
    server = create_server(clean.settings, RuntimeHolder(clean.settings, clean))
    async with Client(server, mode="legacy") as client:  # type: ignore[arg-type]
        res = await client.call_tool("index_web_page", {"url": f"{evil_site}/", "max_depth": 1, "max_pages": 5, **args})
    assert res.is_error
    text = " ".join(getattr(c, "text", "") for c in res.content)
    assert fragment in text, text
