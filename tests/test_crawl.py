"""Whole-site crawls on the local test site: discovery, scope, robots, duplicates, incremental re-crawl, tools."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from mcp import Client

from mcp_web_ingest.crawl.jobs import CrawlParams
from mcp_web_ingest.crawl.manager import CrawlStatus
from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.interface.server import create_server
from mcp_web_ingest.runtime import Runtime, RuntimeHolder
from mcp_web_ingest.search.request import SearchRequest

pytestmark = pytest.mark.both_backends

CRAWL = CrawlParams(max_depth=5, max_pages=60)


async def _crawl(rt: Runtime, url: str, params: CrawlParams = CRAWL, collection: str | None = None) -> CrawlStatus:
    job_id = await rt.crawler.start(url, params, collection)
    return await rt.crawler.wait(job_id, 120)


async def _url_states(rt: Runtime, job_id: str) -> dict[str, tuple[str, str | None]]:
    async with rt.db.pool.connection() as conn:
        cur = await conn.execute("SELECT url, state, reason FROM crawl_urls WHERE job_id::text = %s", (job_id,))
        return {u.split("/crawl/", 1)[-1]: (s, r) for u, s, r in await cur.fetchall()}


async def test_crawl_discovers_respects_scope_and_reports_failures(clean: Runtime, site: str) -> None:
    status = await _crawl(clean, f"{site}/crawl/index.html")
    states = await _url_states(clean, status.job_id)
    assert status.state == "partial"  # failed pages: never 'done'
    assert {f["url"].rsplit("/", 1)[-1] for f in status.failed} == {"missing.html", "broken.html"}
    assert "404" in next(f["reason"] for f in status.failed if f["url"].endswith("missing.html"))
    # discovery: links, sitemap index + gzip sitemap, llms.txt
    assert states["sitemap-only.html"][0] == "indexed" and states["llms-only.html"][0] == "indexed"
    # robots.txt: a disallowed page is skipped with its reason, an allowed one in the same folder is indexed
    assert states["private/secret.html"][0] == "skipped" and "robots.txt" in (states["private/secret.html"][1] or "")
    assert states["private/public.html"][0] == "indexed"
    skipped = {f["url"].split("/crawl/", 1)[-1]: f["reason"] for f in status.skipped}
    assert "robots.txt" in skipped["private/secret.html"]  # crawl_status says why, not only how many
    # identical content stored once; canonical links followed instead of the page that declares them
    assert "same content as" in (states["install-copy.html"][1] or "")
    assert "canonical" in (states["config-old.html"][1] or "")
    # default exclusions never enter the frontier; query order and fragments collapse to one URL
    assert not any(u.endswith((".png", ".css")) or "logout" in u for u in states)
    assert states["files/manual.pdf"][0] == "indexed"  # a linked PDF is a document, read like a page
    assert sum(1 for u in states if u.startswith("search.html")) == 1
    # the trap ends at max_depth
    assert max(int(u.rsplit("/", 1)[-1]) for u in states if u.startswith("trap/")) <= CRAWL.max_depth
    counts = await clean.store.catalog.counts()
    assert counts["pages"] == status.counts["indexed"] and counts["chunks"] == status.counts["chunks"]
    res = await clean.pipeline.search(SearchRequest.create(clean.settings, "froobnicator sitemap only page", k=5))
    assert res.hits


async def test_recrawl_is_incremental_and_refresh_tracks_changes(clean: Runtime, site: str) -> None:
    first = await _crawl(clean, f"{site}/crawl/index.html")
    second = await _crawl(clean, f"{site}/crawl/index.html")
    assert second.counts["indexed"] == 0 and second.counts["unchanged"] == first.counts["indexed"]
    assert second.changes["unchanged"] == first.counts["indexed"]
    pages_before = (await clean.store.catalog.counts())["pages"]

    async with aiohttp.ClientSession() as s:
        async with s.get(f"{site}/crawl/usage.html") as r:
            body = await r.text()
        changed = body.replace("</main>", "<h2 id='new'>Brand new section</h2><p>Quokka telemetry.</p></main>")
        async with s.put(f"{site}/crawl/usage.html", data=changed.encode()):
            pass
        async with s.delete(f"{site}/crawl/faq.html"):
            pass
    job_id = await clean.crawler.refresh(url_prefix=f"{site}/crawl/")
    refreshed = await clean.crawler.wait(job_id, 120)
    assert refreshed.kind == "refresh" and refreshed.state == "done"
    assert refreshed.changes == {"added": 0, "changed": 1, "unchanged": pages_before - 2, "removed": 1}
    assert (await clean.store.catalog.counts())["pages"] == pages_before - 1
    hit = (await clean.pipeline.search(SearchRequest.create(clean.settings, "quokka telemetry", k=1))).hits[0]
    assert hit.url.endswith("/crawl/usage.html") and hit.anchor == "new"


async def test_cancel_and_validation(clean: Runtime, site: str) -> None:
    job_id = await clean.crawler.start(f"{site}/crawl/index.html", CrawlParams(max_depth=5, max_pages=60))
    status = await clean.crawler.cancel(job_id)
    assert status.state == "cancelled"
    assert (await clean.crawler.status(job_id)).state == "cancelled"
    for bad, fragment in [
        (CrawlParams(max_depth=-1, max_pages=5), "max_depth"),
        (CrawlParams(max_depth=1, max_pages=0), "max_pages"),
        (CrawlParams(max_depth=1, max_pages=5, include=("[unclosed",)), "include"),
    ]:
        with pytest.raises(InvalidInputError, match=fragment):
            await clean.crawler.start(f"{site}/crawl/index.html", bad)
    with pytest.raises(InvalidInputError, match="No crawl job"):
        await clean.crawler.status("00000000-0000-0000-0000-000000000000")


async def test_robots_5xx_disallows_everything(clean: Runtime, site: str) -> None:
    async with aiohttp.ClientSession() as s, s.put(f"{site}/_control/robots?mode=500"):
        pass
    status = await _crawl(clean, f"{site}/crawl/index.html", CrawlParams(max_depth=2, max_pages=10, use_sitemap=False))
    assert status.counts["indexed"] == 0 and status.counts["skipped"] >= 1
    ignored = await _crawl(
        clean, f"{site}/crawl/index.html", CrawlParams(max_depth=0, max_pages=2, respect_robots=False)
    )
    assert ignored.counts["indexed"] >= 1


@contextlib.asynccontextmanager
async def _client(rt: Runtime) -> AsyncIterator[Client]:
    async with Client(create_server(rt.settings, RuntimeHolder(rt.settings, rt)), mode="legacy") as c:
        yield c


async def test_crawl_tools_over_mcp(clean: Runtime, site: str) -> None:
    progress: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with _client(clean) as client:
        res = await client.call_tool(
            "index_web_page",
            {"url": f"{site}/crawl/index.html", "max_depth": 3, "max_pages": 40, "wait_seconds": 0.5},
            progress_callback=on_progress,
        )
        assert not res.is_error, res.content
        data = res.structured_content
        assert data["kind"] == "crawl" and data["page"] is None
        job_id = data["job"]["job_id"]
        res = await client.call_tool("crawl_status", {"job_id": job_id, "wait_seconds": 120})
        job = res.structured_content
        assert job["finished"] and job["state"] == "partial" and job["counts"]["indexed"] >= 10
        assert progress and "discovered" in progress[0]

        res = await client.call_tool("list_sources", {})
        sources = res.structured_content["sources"]
        assert len(sources) == 1 and sources[0]["pages"] == job["counts"]["indexed"]
        assert sources[0]["last_job_state"] == "partial"

        res = await client.call_tool("refresh_source", {"url_prefix": f"{site}/crawl/", "wait_seconds": 120})
        assert res.structured_content["state"] == "done"
        assert res.structured_content["changes"]["unchanged"] == job["counts"]["indexed"]

        res = await client.call_tool("delete_source", {"domain": "127.0.0.1"})
        assert res.structured_content["pages_deleted"] == job["counts"]["indexed"]
        assert (await clean.store.catalog.counts())["chunks"] == 0

        res = await client.call_tool("crawl_status", {"job_id": "nope"})
        assert res.is_error and "No crawl job" in res.content[0].text
