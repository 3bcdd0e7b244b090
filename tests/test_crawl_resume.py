"""A server SIGKILLed mid-crawl: the next server resumes the job, with exact counts and no duplicate or half pages."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
from mcp import Client

from mcp_web_ingest.runtime import Runtime

from .servers import ServerProcess, start_server


async def _start_server(data_dir: Path) -> ServerProcess:
    # A slow per-host rate keeps the crawl running long enough to be killed in the middle.
    return await start_server(data_dir, CRAWL_REQUESTS_PER_SECOND="4", CRAWL_CONCURRENCY="2")


async def _status(base: str, job_id: str, wait: float = 0) -> dict:
    async with Client(base + "/mcp") as client:
        res = await client.call_tool("crawl_status", {"job_id": job_id, "wait_seconds": wait})
        assert not res.is_error, res.content
        return res.structured_content


async def test_sigkill_mid_crawl_then_resume(clean: Runtime, data_dir: Path, site_url: str) -> None:
    async with aiohttp.ClientSession() as s, s.put(f"{site_url}/_control/reset"):
        pass
    server = await _start_server(data_dir)
    proc, base = server.proc, server.base
    try:
        async with Client(base + "/mcp") as client:
            res = await client.call_tool(
                "index_web_page",
                {"url": f"{site_url}/crawl/index.html", "max_depth": 5, "max_pages": 60, "wait_seconds": 0},
            )
            job_id = res.structured_content["job"]["job_id"]
        for _ in range(200):
            status = await _status(base, job_id)
            if status["counts"]["indexed"] >= 4:
                break
            await asyncio.sleep(0.1)
        assert not status["finished"], "the crawl finished before it could be killed; slow it down"
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    job = await clean.jobs.get(job_id)
    assert job is not None and job.state == "running"  # the dead server's job waits to be resumed

    server = await _start_server(data_dir)  # resumes orphaned jobs at start-up
    try:
        final = await _status(server.base, job_id, wait=120)
    finally:
        await server.stop()
    assert final["finished"] and final["state"] == "partial"
    assert final["counts"]["queued"] == final["counts"]["in_progress"] == 0
    async with clean.db.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT count(*), count(DISTINCT url) FROM crawl_urls WHERE job_id::text = %s", (job_id,)
            )
        ).fetchone()
        assert rows[0] == rows[1] == final["counts"]["discovered"]  # each URL once in the frontier
        stored = await (await conn.execute("SELECT count(*), coalesce(sum(chunk_count), 0) FROM pages")).fetchone()
        chunks = await (await conn.execute("SELECT count(*) FROM chunks")).fetchone()
    # Every page whose URL finished indexed or unchanged is stored exactly once, with all its chunks.
    assert stored[0] == final["counts"]["indexed"] + final["counts"]["unchanged"]
    assert chunks[0] == stored[1]


async def test_repeated_sigkills_at_random_moments(clean: Runtime, data_dir: Path, site_url: str) -> None:
    """Kill the server three times at random points of one crawl (mid-fetch, mid-embedding, mid-write alike)."""
    import random

    rng = random.Random(20261128)  # reproducible "random" moments
    async with aiohttp.ClientSession() as s, s.put(f"{site_url}/_control/reset"):
        pass
    job_id = None
    for _ in range(3):
        server = await _start_server(data_dir)
        try:
            async with Client(server.base + "/mcp") as client:
                if job_id is None:
                    res = await client.call_tool(
                        "index_web_page",
                        {"url": f"{site_url}/crawl/index.html", "max_depth": 5, "max_pages": 60, "wait_seconds": 0},
                    )
                    job_id = res.structured_content["job"]["job_id"]
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            server.proc.send_signal(signal.SIGKILL)
            await server.proc.wait()
        finally:
            await server.stop()
    assert job_id is not None
    server = await _start_server(data_dir)
    try:
        final = await _status(server.base, job_id, wait=180)
    finally:
        await server.stop()
    assert final["finished"] and final["state"] == "partial"
    async with clean.db.pool.connection() as conn:
        frontier = await (
            await conn.execute(
                "SELECT count(*), count(DISTINCT url), count(*) FILTER (WHERE state IN ('queued', 'fetching')) "
                "FROM crawl_urls WHERE job_id::text = %s",
                (job_id,),
            )
        ).fetchone()
        stored = await (await conn.execute("SELECT count(*), coalesce(sum(chunk_count), 0) FROM pages")).fetchone()
        chunks = await (await conn.execute("SELECT count(*) FROM chunks")).fetchone()
        orphans = await (
            await conn.execute(
                "SELECT count(*) FROM pages p WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE page_id = p.id)"
            )
        ).fetchone()
    assert frontier[0] == frontier[1] and frontier[2] == 0
    assert stored[0] == final["counts"]["indexed"] + final["counts"]["unchanged"]
    assert chunks[0] == stored[1] and orphans[0] == 0  # no half-written page survived any kill
