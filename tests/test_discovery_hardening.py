"""Crawl discovery under robots.txt and the SSRF guard, on real sites (127.0.0.1/127.0.0.2) and the real database.

robots.txt applies to llms.txt, guessed and index-listed sitemaps and every redirect hop of them (a sitemap named on a
``Sitemap:`` line is fetched by convention); one blocked sitemap does not stop the others; a robots.txt behind a
blocked address counts as unavailable (allow all, noted); a blocked host inside a crawl is a failed URL, not a bug.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from mcp_web_ingest.crawl.jobs import CrawlParams
from mcp_web_ingest.crawl.manager import CrawlManager, CrawlStatus
from mcp_web_ingest.crawl.robots import fetch_robots
from mcp_web_ingest.crawl.seeds import discover_sitemap_urls
from mcp_web_ingest.ingest.fetch import HttpFetcher
from mcp_web_ingest.ingest.ssrf import guarded_session
from mcp_web_ingest.runtime import Runtime, make_pipeline

UA = "mcp-web-ingest/0.1"
XML = "application/xml"
METADATA = "http://169.254.169.254"  # refused by the guard before any packet leaves


def _page(title: str, links: tuple[str, ...] = ()) -> str:
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    words = f"{title} explains the quarbleflux settings in some detail, with enough words to be a real page."
    body = f"<main><h1>{title}</h1><p>{words}</p><ul>{anchors}</ul></main>"
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>"


def _urlset(*urls: str) -> str:
    return "<urlset>" + "".join(f"<url><loc>{u}</loc></url>" for u in urls) + "</urlset>"


def _index(*urls: str) -> str:
    return "<sitemapindex>" + "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in urls) + "</sitemapindex>"


Route = Callable[[str], web.Response]  # origin → answer


@asynccontextmanager
async def serve(routes: dict[str, Route], host: str = "127.0.0.1") -> AsyncIterator[tuple[str, list[str]]]:
    """A site of ``routes`` (path → answer built from the origin) on ``host``; yields (origin, paths requested)."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        route = routes.get(request.path)
        return route(str(request.url.origin())) if route else web.Response(status=404, text="missing")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, 0).start()
        yield f"http://{host}:{runner.addresses[0][1]}", hits
    finally:
        await runner.cleanup()


def text(body: str, content_type: str = "text/plain") -> Route:
    return lambda origin: web.Response(text=body.format(origin=origin), content_type=content_type)


def html(title: str, *links: str) -> Route:
    return lambda origin: web.Response(text=_page(title, links), content_type="text/html")


def redirect(location: str) -> Route:
    return lambda origin: web.Response(status=302, headers={"Location": location.format(origin=origin)})


GuardedCrawler = Callable[[list[str]], CrawlManager]


@pytest.fixture
async def guarded_crawler(clean: Runtime) -> AsyncIterator[GuardedCrawler]:
    """CrawlManagers on the real runtime's store, with the SSRF guard on and only ``allowed`` hosts let through."""
    made: list[tuple[CrawlManager, HttpFetcher]] = []

    def make(allowed: list[str]) -> CrawlManager:
        s = clean.settings.model_copy(update={"allow_private_networks": False, "allowed_hosts": allowed})
        fetcher = HttpFetcher(s)
        pipeline = make_pipeline(s, fetcher, clean.embedder, clean.store, clean.metrics, clean.sparse, clean.reranker)
        made.append((CrawlManager(s, clean.store, clean.jobs, pipeline, clean.metrics), fetcher))
        return made[-1][0]

    yield make
    for crawler, fetcher in made:
        await crawler.aclose()
        await fetcher.aclose()


async def _crawl(crawler: CrawlManager, url: str, **params: Any) -> CrawlStatus:
    job = await crawler.start(url, CrawlParams(**{"max_depth": 2, "max_pages": 20, **params}), "hardening")
    return await crawler.wait(job, 120)


async def _states(rt: Runtime, job_id: str) -> dict[str, tuple[str, str | None]]:
    async with rt.db.pool.connection() as conn:
        cur = await conn.execute("SELECT url, state, reason FROM crawl_urls WHERE job_id::text = %s", (job_id,))
        return {u.split("/", 3)[-1]: (s, r) for u, s, r in await cur.fetchall()}


# --- robots.txt for llms.txt and sitemaps ---------------------------------------------------------------------


async def test_llms_txt_and_sitemaps_obey_robots(clean: Runtime) -> None:
    """Disallowed llms.txt files, index children and redirect hops are never requested; a listed sitemap is."""
    routes = {
        "/robots.txt": text(
            "User-agent: *\nDisallow: /llms.txt\nDisallow: /private/\nSitemap: {origin}/private/sitemap.xml\n"
        ),
        "/llms.txt": text("- [Root](/docs/from-root-llms.html)"),
        "/docs/llms.txt": redirect("{origin}/private/llms.txt"),
        "/private/llms.txt": text("- [Hidden](/docs/from-private-llms.html)"),
        "/private/sitemap.xml": text(
            _index("{origin}/private/child.xml", "{origin}/maps/child.xml"), "application/xml"
        ),
        "/private/child.xml": text(_urlset("{origin}/docs/from-private-child.html"), XML),
        "/maps/child.xml": text(_urlset("{origin}/docs/from-sitemap.html"), XML),
        "/docs/index.html": html("Start page"),
        "/docs/from-sitemap.html": html("Sitemap page"),
    }
    async with serve(routes) as (origin, hits):
        status = await _crawl(clean.crawler, f"{origin}/docs/index.html")
    assert not {"/llms.txt", "/private/llms.txt", "/private/child.xml"} & set(hits), hits
    assert {"/robots.txt", "/private/sitemap.xml", "/maps/child.xml", "/docs/llms.txt"} <= set(hits)
    states = await _states(clean, status.job_id)
    assert states["docs/from-sitemap.html"][0] == "indexed" and states["docs/index.html"][0] == "indexed"
    assert not any("from-root-llms" in u or "from-private" in u for u in states)
    notes = " ".join(status.notes)
    assert f"llms.txt {origin}/llms.txt: disallowed by robots.txt" in notes
    assert f"redirected to {origin}/private/llms.txt, disallowed by robots.txt" in notes
    assert f"sitemap {origin}/private/child.xml: disallowed by robots.txt" in notes


async def test_disallow_all_fetches_no_discovery_file(clean: Runtime) -> None:
    """``Disallow: /``: neither llms.txt (root or prefix) nor the guessed /sitemap.xml is requested."""
    routes = {
        "/robots.txt": text("User-agent: *\nDisallow: /\n"),
        "/llms.txt": text("- [A](/docs/a.html)"),
        "/sitemap.xml": text(_urlset("{origin}/docs/b.html"), XML),
        "/docs/index.html": html("Start page"),
    }
    async with serve(routes) as (origin, hits):
        status = await _crawl(clean.crawler, f"{origin}/docs/index.html")
    assert hits == ["/robots.txt"], hits
    assert status.counts["indexed"] == 0 and status.counts["skipped"] == 1


# --- the SSRF guard inside discovery and crawls ----------------------------------------------------------------


async def test_blocked_sitemap_line_does_not_stop_the_others(guarded_crawler: GuardedCrawler, clean: Runtime) -> None:
    routes = {
        "/robots.txt": text(f"Sitemap: {METADATA}/sitemap.xml\nSitemap: {{origin}}/good.xml\n"),
        "/good.xml": text(_urlset("{origin}/docs/from-sitemap.html"), XML),
        "/docs/index.html": html("Start page"),
        "/docs/from-sitemap.html": html("Sitemap page"),
    }
    async with serve(routes) as (origin, _hits):
        settings = clean.settings.model_copy(update={"allow_private_networks": False, "allowed_hosts": ["127.0.0.1"]})
        async with guarded_session(settings) as session:
            robots = await fetch_robots(session, origin, UA, 5)
            problems: list[str] = []
            found = await discover_sitemap_urls(session, f"{origin}/docs/", robots, problems=problems)
        assert found == [(f"{origin}/docs/from-sitemap.html", None)]
        assert len(problems) == 1 and problems[0].startswith(f"sitemap {METADATA}/sitemap.xml: Refusing to fetch")

        status = await _crawl(guarded_crawler(["127.0.0.1"]), f"{origin}/docs/index.html")
    states = await _states(clean, status.job_id)
    assert states["docs/from-sitemap.html"][0] == "indexed" and status.state == "done"
    assert f"sitemap {METADATA}/sitemap.xml: Refusing to fetch" in " ".join(status.notes)
    assert "the cloud metadata address" in " ".join(status.notes)


async def test_robots_redirect_to_blocked_host_counts_as_unavailable(
    guarded_crawler: GuardedCrawler, clean: Runtime
) -> None:
    routes = {
        "/robots.txt": redirect(f"{METADATA}/robots.txt"),
        "/docs/index.html": html("Start page", "/docs/two.html"),
        "/docs/two.html": html("Second page"),
    }
    async with serve(routes) as (origin, _hits):
        settings = clean.settings.model_copy(update={"allow_private_networks": False, "allowed_hosts": ["127.0.0.1"]})
        async with guarded_session(settings) as session:
            rules = await fetch_robots(session, origin, UA, 5)
        assert rules.allowed(f"{origin}/docs/") and rules.note and "blocked address" in rules.note
        assert "treated as unavailable, everything allowed" in rules.reason

        status = await _crawl(guarded_crawler(["127.0.0.1"]), f"{origin}/docs/index.html")
    assert status.state == "done" and status.counts["indexed"] == 2
    assert f"{origin}/robots.txt not fetched (blocked address: " in " ".join(status.notes)


async def test_blocked_host_by_name_is_a_failed_url(
    guarded_crawler: GuardedCrawler, clean: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A redirect to ``localhost`` (127.0.0.1, not allowed) and a job started there: failed URLs, no traceback."""
    routes: dict[str, Route] = {
        "/docs/index.html": html("Start page", "/docs/go"),
        "/docs/secret.html": html("Secret page"),
    }
    async with serve(routes, host="127.0.0.2") as (origin, _hits):
        port = origin.rsplit(":", 1)[1]
        routes["/docs/go"] = redirect(f"http://localhost:{port}/docs/secret.html")
        crawler = guarded_crawler(["127.0.0.2"])
        caplog.set_level(logging.INFO)
        status = await _crawl(crawler, f"{origin}/docs/index.html")
        by_name = await _crawl(crawler, f"http://localhost:{port}/docs/index.html")
    states = await _states(clean, status.job_id)
    assert states["docs/index.html"][0] == "indexed"
    state, reason = states["docs/go"]
    assert state == "failed" and (reason or "").startswith("blocked address: Refusing to fetch")
    assert "localhost resolves to 127.0.0.1, a loopback address" in (reason or "")
    assert status.state == "partial"

    assert by_name.state == "failed" and by_name.counts["failed"] == 1
    assert by_name.failed[0]["reason"].startswith("blocked address: Refusing to fetch")
    assert "localhost resolves to 127.0.0.1" in by_name.failed[0]["reason"]
    assert "robots.txt not fetched (blocked address" in " ".join(by_name.notes)
    assert not [r for r in caplog.records if r.exc_info or "internal error" in r.getMessage()]
