"""Scheduled refresh: a source refreshes by itself, picks up an edit, a removal and a new page, never runs twice."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from mcp_web_ingest.crawl.jobs import TERMINAL, CrawlParams
from mcp_web_ingest.crawl.schedule import Schedule, interval_seconds, source_prefix
from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.storage.postgres.sources import collection_id

from .mcp_helpers import call, connect
from .servers import start_server


@pytest.fixture(autouse=True)
def scheduler_defaults(clean: Runtime) -> Iterator[None]:
    """The scheduler back to its own check interval after each test."""
    yield
    clean.scheduler.check_s = clean.settings.refresh_check_s


async def _quiet_scheduler(rt: Runtime) -> None:
    """Keep this test process's own scheduler from claiming what the test claims (it wakes once, then sleeps)."""
    rt.scheduler.check_s = 3600
    rt.scheduler.poke()
    await asyncio.sleep(0.2)


async def _scheduled_run_after(rt: Runtime, when: datetime, timeout_s: float = 90) -> Schedule:
    """The schedule once a refresh it started after ``when`` has finished."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        [schedule] = await rt.scheduler.store.all()
        if schedule.last_run_at and schedule.last_run_at > when and schedule.last_state in TERMINAL:
            return schedule
        await asyncio.sleep(0.2)
    raise AssertionError("no scheduled refresh finished in time")


async def test_a_scheduled_refresh_runs_by_itself(clean: Runtime, site: str) -> None:
    usage, faq, config, new = (f"{site}/crawl/{p}.html" for p in ("usage", "faq", "config", "whatsnew"))
    async with connect(clean) as client:
        for url in (usage, faq, config):
            await call(client, "index_web_page", url=url)
        job = await call(client, "refresh_source", url_prefix=f"{site}/crawl/", refresh_interval="1s", wait_seconds=60)
        assert job["state"] == "done"
        before = datetime.now(UTC)
        async with aiohttp.ClientSession() as s:
            async with s.get(usage) as r:
                body = await r.text()
            edited = body.replace("</main>", "<h2 id='new'>New</h2><p>See <a href='whatsnew.html'>news</a>.</p></main>")
            async with s.put(usage, data=edited.encode()):
                pass
            async with s.delete(faq):
                pass
            news = body.replace("Usage", "What is new").replace("quibbleflux stream", "zeppelin telemetry stream")
            async with s.put(new, data=news.encode()):
                pass
        clean.scheduler.check_s = 0.2
        clean.scheduler.poke()
        schedule = await _scheduled_run_after(clean, before)
        changes = await call(client, "what_changed", since=before.isoformat())
        sources = (await call(client, "list_sources"))["sources"]
        await clean.scheduler.store.set("default", f"{site}/crawl/", 3600, None)  # not due again for an hour
        async with clean.db.pool.connection() as conn:
            await conn.execute("UPDATE pages SET crawled_at = now() - interval '2 hours' WHERE url = %s", (config,))
        stale = {
            r["url"]: r["provenance"]["stale"]
            for r in (await call(client, "search", query="frobnitz configuration usage", k=10))["results"]
        }
        await clean.scheduler.observe()
        metrics = clean.metrics.render().decode()
        off = await call(client, "refresh_source", url_prefix=f"{site}/crawl/", refresh_interval="off", wait_seconds=60)
    assert schedule.last_state in ("done", "partial") and schedule.interval_s == 1.0
    assert new in [p["url"] for p in changes["added"]]  # found through the edited page's new link
    assert [p["url"] for p in changes["removed"]] == [faq]
    assert usage in [p["url"] for p in changes["changed"]]
    [refresh] = [r for s in sources for r in s["refresh"]]
    assert refresh["url_prefix"] == f"{site}/crawl/" and refresh["last_state"] in ("done", "partial")
    assert stale[config] is True and stale[usage] is False
    assert (
        'web_refresh_schedules{state="done"} 1.0' in metrics or 'web_refresh_schedules{state="partial"} 1.0' in metrics
    )
    assert (
        "web_refresh_next_run_timestamp_seconds" in metrics
        and 'web_scheduled_refreshes_total{outcome="started"}' in metrics
    )
    assert off["state"] == "done" and await clean.scheduler.store.all() == []


async def test_a_source_is_never_refreshed_twice_at_once(clean: Runtime, site: str) -> None:
    store = clean.scheduler.store
    await _quiet_scheduler(clean)
    await clean.pipeline.index_page(f"{site}/crawl/usage.html")
    await store.set("default", f"{site}/crawl/", 3600, None)
    async with clean.db.pool.connection() as conn:
        key = await collection_id(conn, "default")
    running = await clean.jobs.create(key, "refresh", f"{site}/crawl/", CrawlParams())  # unfinished, as after a crash
    await store.started("default", f"{site}/crawl/", running)
    async with clean.db.pool.connection() as conn:
        await conn.execute("UPDATE refresh_schedules SET next_run_at = now() - interval '1 minute'")
    assert await store.claim_due() == []  # due, but its last refresh has not finished
    await clean.jobs.finish(running, "done")
    [claimed] = await store.claim_due()
    assert claimed.url_prefix == f"{site}/crawl/" and claimed.next_run_at > datetime.now(UTC)
    assert await store.claim_due() == []  # moved to its next run


def test_intervals_and_prefixes() -> None:
    assert interval_seconds("90m") == 5400 and interval_seconds("1d") == 86400
    with pytest.raises(InvalidInputError, match="30m, 12h, 1d or 1w"):
        interval_seconds("daily")
    assert source_prefix("https://d.example/a/b.html", "path") == "https://d.example/a/"
    assert source_prefix("https://d.example/a/b.html", "domain") == "https://d.example/"
    assert source_prefix("https://d.example/a/b.html") == "https://d.example/a/b.html"


async def test_a_restart_mid_refresh_resumes_it_and_runs_it_once(clean: Runtime, site: str, data_dir: Path) -> None:
    """A server SIGKILLed during a scheduled refresh: the next one resumes that job and starts no second one."""
    pages = ("index", "install", "usage", "config", "faq", "changelog", "api/index", "api/client")
    for page in pages:
        await clean.pipeline.index_page(f"{site}/crawl/{page}.html")
    await _quiet_scheduler(clean)
    prefix = f"{site}/crawl/"
    # One page a second: the refresh of eight pages is still running when the server is killed.
    env = {"REFRESH_CHECK_S": "0.2", "CRAWL_REQUESTS_PER_SECOND": "1", "CRAWL_CONCURRENCY": "1"}
    server = await start_server(data_dir, **env)
    try:
        await clean.scheduler.store.set("default", prefix, 3600, None)
        async with clean.db.pool.connection() as conn:
            await conn.execute("UPDATE refresh_schedules SET next_run_at = now()")
        for _ in range(100):
            [schedule] = await clean.scheduler.store.all()
            if schedule.last_job_id:
                break
            await asyncio.sleep(0.1)
        assert schedule.last_job_id and schedule.last_state in ("queued", "running")
        server.proc.send_signal(signal.SIGKILL)
        await server.proc.wait()
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()
    async with clean.db.pool.connection() as conn:
        await conn.execute("UPDATE refresh_schedules SET next_run_at = now()")  # due again, as after a long outage
    server = await start_server(data_dir, **env)
    old, overlapped, state = schedule.last_job_id, False, None
    try:
        for _ in range(300):
            async with clean.db.pool.connection() as conn:
                rows = await (
                    await conn.execute("SELECT id::text, state, finished_at FROM crawl_jobs WHERE kind = 'refresh'")
                ).fetchall()
            [(_, state, finished)] = [r for r in rows if r[0] == old]
            overlapped = overlapped or (finished is None and len(rows) > 1)
            if finished is not None:
                break
            await asyncio.sleep(0.2)
    finally:
        await server.stop()
    assert state in ("done", "partial")  # the interrupted refresh was resumed and finished
    assert not overlapped  # due all along, yet no second refresh started while it ran
