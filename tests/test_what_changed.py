"""what_changed over MCP: pages added, changed (with the changed sections) and removed, from a real refresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.interface.changes import parse_since
from mcp_web_ingest.runtime import Runtime

from .mcp_helpers import call, connect

pytestmark = pytest.mark.both_backends


async def test_refresh_changes_are_listed_with_their_sections(clean: Runtime, site: str) -> None:
    usage, faq, config = (f"{site}/crawl/{p}.html" for p in ("usage", "faq", "config"))
    new_page = f"{site}/crawl/whatsnew.html"
    async with connect(clean) as client:
        for url in (usage, faq):
            await call(client, "index_web_page", url=url)
        empty = await call(client, "what_changed")  # no refresh has run yet
        before = datetime.now(UTC)
        async with aiohttp.ClientSession() as s:
            async with s.get(usage) as r:
                body = await r.text()
            body = body.replace("</main>", "<h2 id='quotas'>Quotas</h2><p>Reports are capped at 40 a day.</p></main>")
            body = body.replace("turn a quibbleflux stream", "turn one or more quibbleflux streams")
            async with s.put(usage, data=body.encode()):
                pass
            async with s.delete(faq):
                pass
            page = body.replace("Usage", "What is new").replace("quotas", "news")
            async with s.put(new_page, data=page.encode()):
                pass
        refreshed = await call(client, "refresh_source", url_prefix=f"{site}/crawl/", wait_seconds=60)
        await call(client, "index_web_page", url=new_page)
        await call(client, "index_web_page", url=config)
        changes = await call(client, "what_changed", since=before.isoformat())
        since_refresh = await call(client, "what_changed")  # default: since the last refresh started
        only_usage = await call(client, "what_changed", since=before.isoformat(), url_prefix=usage)
        within_hour = await call(client, "what_changed", since="1h", url_prefix=usage)
    assert empty["since"] is None and not (empty["added"] or empty["changed"] or empty["removed"])
    assert refreshed["state"] == "done"
    assert [p["url"] for p in changes["added"]] == [config, new_page]  # newest first
    assert [p["url"] for p in changes["removed"]] == [faq]
    [changed] = changes["changed"]
    assert changed["url"] == usage and changed["title"] == "Usage"
    assert {(s["change"], s["section"], s["deep_link"]) for s in changed["sections"]} == {
        ("added", "Quotas", f"{usage}#quotas"),
        ("changed", "", f"{usage}#top"),
    }
    assert since_refresh["since_source"] == "last refresh" and since_refresh["changed"] == changes["changed"]
    assert [p["url"] for p in only_usage["changed"]] == [usage] and not only_usage["added"]
    assert [p["url"] for p in within_hour["added"]] == [usage]  # indexed, then changed, within the hour: added


async def test_unchanged_and_forced_reindex_are_not_changes(clean: Runtime, site: str) -> None:
    url = f"{site}/crawl/usage.html"
    async with connect(clean) as client:
        await call(client, "index_web_page", url=url)
        start = datetime.now(UTC)
        await call(client, "index_web_page", url=url)  # unchanged: nothing written
        await call(client, "index_web_page", url=url, force=True)  # re-chunked to the same text
        changes = await call(client, "what_changed", since=start.isoformat())
        limited = await call(client, "what_changed", since="2w", limit=1)
    assert not (changes["added"] or changes["changed"] or changes["removed"])
    assert limited["added"][0]["url"] == url and not limited["truncated"]


def test_since_accepts_dates_and_spans() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2026-11-23", now) == datetime(2026, 11, 23, tzinfo=UTC)
    assert parse_since("2026-11-23T09:30:00Z", now) == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="90m, 24h, 7d, 2w"):
        parse_since("last tuesday", now)


async def test_results_carry_their_provenance(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/etag.html"  # other tests may have edited it: its Last-Modified is read, not assumed
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        served = r.headers["Last-Modified"]
    async with connect(clean) as client:
        await call(client, "index_web_page", url=url)
        first = (await call(client, "search", query="wibblequark changelog"))["results"][0]
        await call(client, "index_web_page", url=url)  # a conditional GET answered 304: verified, not re-fetched
        second = (await call(client, "search", query="wibblequark changelog"))["results"][0]
    stored = await clean.store.catalog.get_page("default", url)
    assert stored is not None and first["url"] == url
    p1, p2 = first["provenance"], second["provenance"]
    assert p1["last_modified"] == served and p1["content_format"] == "html"
    assert p1["content_hash"] == stored.content_hash
    assert p2["fetched_at"] == p1["fetched_at"] and p2["verified_at"] > p1["verified_at"]
    assert datetime.fromisoformat(p1["fetched_at"]) > datetime.now(UTC) - timedelta(minutes=5)
