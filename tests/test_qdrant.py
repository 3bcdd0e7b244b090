"""Only the Qdrant index: point ids = chunk ids, two-store consistency and repair, Qdrant down, cluster options.

The shared behaviour (index, search, crawl, legacy switch, SPLADE, tools) runs on both backends in the modules marked
both_backends; every one of those tests also checks that PostgreSQL and Qdrant end in sync (see conftest.clean).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from mcp_web_ingest.config import Settings
from mcp_web_ingest.crawl.jobs import CrawlParams
from mcp_web_ingest.errors import StoreError, VectorStoreError
from mcp_web_ingest.models import Chunk
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest
from mcp_web_ingest.storage.qdrant.collection import collection_options
from mcp_web_ingest.storage.qdrant.index import QdrantIndex
from mcp_web_ingest.storage.records import PageRecord

from .conftest import free_port


def _index(rt: Runtime) -> QdrantIndex:
    assert isinstance(rt.store.index, QdrantIndex)
    return rt.store.index


async def _point_ids(rt: Runtime) -> set[int]:
    index = _index(rt)
    points, _ = await index._client.scroll(index.name, limit=10_000)  # type: ignore[union-attr]
    return {int(p.id) for p in points}


async def _chunk_ids(rt: Runtime) -> set[int]:
    async with rt.db.pool.connection() as conn:
        return {int(r[0]) for r in await (await conn.execute("SELECT id FROM chunks")).fetchall()}


@pytest.fixture
async def qrt(qdrant_runtime: Runtime) -> Runtime:
    """The Qdrant runtime, emptied."""
    await qdrant_runtime.store.truncate_all()
    return qdrant_runtime


def test_collection_options_come_from_settings(settings: Settings) -> None:
    plain = settings.model_copy(update={"vector_store": "qdrant", "qdrant_url": "http://q:6333"})
    assert collection_options(plain) == {"on_disk_payload": True}
    cluster = plain.model_copy(
        update={
            "qdrant_shard_number": 6,
            "qdrant_replication_factor": 2,
            "qdrant_write_consistency_factor": 2,
            "qdrant_on_disk_payload": False,
        }
    )
    assert collection_options(cluster) == {
        "on_disk_payload": False,
        "shard_number": 6,
        "replication_factor": 2,
        "write_consistency_factor": 2,
    }
    with pytest.raises(ValueError, match="QDRANT_URL"):
        Settings(_env_file=None, vector_store="qdrant")  # type: ignore[call-arg]


async def test_points_follow_chunks_through_replace_and_delete(qrt: Runtime, site_url: str) -> None:
    url = f"{site_url}/guide/install.html"
    await qrt.pipeline.index_page(url)
    first = await _chunk_ids(qrt)
    assert first and await _point_ids(qrt) == first  # the point id is the chunk id

    await qrt.pipeline.index_page(url, force=True)  # a rewrite: new chunk rows, the old points go
    second = await _chunk_ids(qrt)
    assert second.isdisjoint(first) and await _point_ids(qrt) == second

    await qrt.pipeline.index_page(f"{site_url}/guide/config.html", collection="other")
    res = await qrt.pipeline.search(SearchRequest.create(qrt.settings, "retention window", collection="other", k=5))
    assert res.hits and all(h.collection == "other" for h in res.hits)
    deleted = await qrt.store.delete_source("other")
    assert deleted == 1 and await _point_ids(qrt) == second
    assert (await _index(qrt).repair(dry_run=True)).in_sync


async def test_failed_row_write_removes_the_points_it_wrote(qrt: Runtime, site_url: str) -> None:
    out = await qrt.pipeline.index_page(f"{site_url}/guide/install.html")
    before = await _point_ids(qrt)
    # PostgreSQL text cannot hold NUL: Qdrant accepts the points, then the row write fails.
    chunks = [Chunk(0, "ok", ("t",), None, 1, "h0"), Chunk(1, "bad\x00text", ("t",), None, 1, "h1")]
    vectors = [np.ones(384, dtype=np.float32)] * 2
    with pytest.raises(StoreError, match="previous version is unchanged"):
        await qrt.store.replace_page("default", PageRecord(out.url, "new", "x", "unified"), chunks, vectors)
    assert await _point_ids(qrt) == before == await _chunk_ids(qrt)


async def test_repair_finds_and_fixes_every_kind_of_drift(qrt: Runtime, site_url: str) -> None:
    await qrt.pipeline.index_page(f"{site_url}/guide/install.html")
    await qrt.pipeline.index_page(f"{site_url}/guide/config.html")
    index, client = _index(qrt), _index(qrt)._client
    assert client is not None
    ids = sorted(await _chunk_ids(qrt))
    config_ids = [i for i, c in (await qrt.store.catalog.get_chunks(ids)).items() if c.url.endswith("config.html")]
    # A crash between the two writes: points missing for committed rows, points left without rows, and a point
    # carrying another page's payload (what a database restore to an older backup leaves behind).
    await client.delete(index.name, points_selector=qm.PointIdsList(points=config_ids), wait=True)
    await client.upsert(
        index.name,
        points=[qm.PointStruct(id=999_001, vector={"dense": [0.1] * 384}, payload={"url": "gone", "collection": "x"})],
        wait=True,
    )
    await client.set_payload(index.name, payload={"url": "http://elsewhere/"}, points=[ids[0]], wait=True)

    res = await qrt.pipeline.search(SearchRequest.create(qrt.settings, "quux retention window precedence", k=3))
    assert not any(h.url.endswith("config.html") for h in res.hits)  # the drift is visible to search

    report = await index.repair(dry_run=True)
    assert report.missing == tuple(sorted(config_ids)) and report.orphans == (999_001,)
    assert report.mismatched == (ids[0],)
    assert not report.fixed and await _point_ids(qrt) != set(ids)

    fixed = await index.repair()
    assert fixed.fixed and (await index.repair(dry_run=True)).in_sync
    assert await _point_ids(qrt) == set(ids)
    res = await qrt.pipeline.search(SearchRequest.create(qrt.settings, "quux retention window precedence", k=3))
    assert res.hits[0].url.endswith("config.html")


async def test_rrf_weights_reach_qdrant(qrt: Runtime, site_url: str) -> None:
    for page in ("guide/install.html", "guide/config.html", "index.html"):
        await qrt.pipeline.index_page(f"{site_url}/{page}")
    query = "proxy settings"
    lexical = await qrt.pipeline.search(SearchRequest.create(qrt.settings, query, k=6, mode="lexical"))
    equal = await qrt.pipeline.search(SearchRequest.create(qrt.settings, query, k=6, mode="hybrid"))
    no_dense = qrt.settings.model_copy(update={"fusion_weight_dense": 0.0})
    async with Runtime.open(no_dense, resume_jobs=False) as rt:
        fused = await rt.pipeline.search(SearchRequest.create(rt.settings, query, k=6, mode="hybrid"))
    # With the dense leg weighted 0, Qdrant's fusion puts the lexical leg's ranking first (dense-only hits trail).
    lexical_ids = [h.chunk_id for h in lexical.hits]
    assert [h.chunk_id for h in fused.hits][: len(lexical_ids)] == lexical_ids
    assert [h.chunk_id for h in equal.hits] != [h.chunk_id for h in fused.hits]


@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
async def test_qdrant_down_is_a_clear_error_and_stores_nothing(settings: Settings, qrt: Runtime, site_url: str) -> None:
    down = qrt.settings.model_copy(update={"qdrant_url": f"http://127.0.0.1:{free_port()}", "qdrant_timeout_s": 2})
    async with Runtime.open(down, resume_jobs=False) as rt:  # starts anyway: PostgreSQL is there
        health = await rt.health()
        assert health["status"] == "error" and health["components"]["qdrant"]["status"] == "error"
        assert "127.0.0.1" in health["components"]["qdrant"]["detail"]
        with pytest.raises(VectorStoreError, match=r"Qdrant .* failed during .*running and reachable"):
            await rt.pipeline.search(SearchRequest.create(rt.settings, "anything"))
        with pytest.raises(VectorStoreError):
            await rt.pipeline.index_page(f"{site_url}/guide/install.html")
        assert (await rt.store.catalog.counts())["pages"] == 0


@pytest.fixture
async def disk_runtime(settings: Settings, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A Qdrant runtime on an on-disk local store (it survives closing the client) and its own database."""
    s = settings.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "vector_store": "qdrant",
            "qdrant_url": str(tmp_path / "qdrant"),
            "crawl_requests_per_second": 0,
        }
    )
    async with Runtime.open(s) as rt:
        yield rt


async def test_crawl_pauses_while_qdrant_is_away_and_resumes(disk_runtime: Runtime, site_url: str) -> None:
    rt, index = disk_runtime, _index(disk_runtime)
    await index.aclose()  # Qdrant goes away before the crawl starts
    job_id = await rt.crawler.start(f"{site_url}/guide/install.html", CrawlParams(max_depth=1, max_pages=4))
    for _ in range(100):
        status = await rt.crawler.status(job_id)
        if status.state == "paused":
            break
        await asyncio.sleep(0.1)
    assert status.state == "paused" and "resumes by itself" in (status.error or "")
    await asyncio.sleep(1.5)  # several probes fail meanwhile; still nothing is failed or lost
    status = await rt.crawler.status(job_id)
    assert status.state == "paused" and status.counts["failed"] == 0 and status.counts["indexed"] == 0

    await index.open()  # Qdrant is back
    status = await rt.crawler.wait(job_id, 60)
    assert status.state == "done" and status.counts["failed"] == 0 and status.counts["indexed"] >= 2
    counts = await rt.store.catalog.counts()
    assert counts["pages"] == status.counts["indexed"] and counts["chunks"] == status.counts["chunks"]
    assert (await index.repair(dry_run=True)).in_sync


async def test_switching_vector_store_both_ways_loses_nothing(
    settings: Settings, tmp_path: Path, site_url: str
) -> None:
    pg = settings.model_copy(update={"data_dir": tmp_path / "data"})
    qd = pg.model_copy(update={"vector_store": "qdrant", "qdrant_url": str(tmp_path / "qdrant")})
    install, config = f"{site_url}/guide/install.html", f"{site_url}/guide/config.html"
    async with Runtime.open(pg, resume_jobs=False) as rt:
        await rt.pipeline.index_page(install)
    async with Runtime.open(qd, resume_jobs=False) as rt:
        request = SearchRequest.create(rt.settings, "install behind a proxy", k=3)
        assert (await rt.pipeline.search(request)).hits == ()  # Qdrant is still empty
        assert (await _index(rt).repair()).fixed  # the switch: copy the vectors over, no embedding
        assert (await rt.pipeline.search(request)).hits[0].url == install
        await rt.pipeline.index_page(config)
    async with Runtime.open(pg, resume_jobs=False) as rt:  # and back: written under Qdrant, found by pgvector
        for mode in ("dense", "lexical", "hybrid"):
            res = await rt.pipeline.search(
                SearchRequest.create(rt.settings, "quux retention window precedence", k=3, mode=mode)
            )
            assert res.hits[0].url == config, mode
        assert (await rt.store.catalog.counts())["pages"] == 2


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp_web_ingest.interface.cli", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_verify_and_repair_commands(settings: Settings, tmp_path: Path, site_url: str) -> None:
    qdrant_dir = tmp_path / "qdrant"
    s = settings.model_copy(
        update={"data_dir": tmp_path / "data", "vector_store": "qdrant", "qdrant_url": str(qdrant_dir)}
    )
    async with Runtime.open(s, resume_jobs=False) as rt:
        await rt.pipeline.index_page(f"{site_url}/guide/install.html")
        victim = min(await _chunk_ids(rt))
    client = AsyncQdrantClient(path=str(qdrant_dir))  # as if the process died between the two writes
    await client.delete(s.qdrant_collection, points_selector=qm.PointIdsList(points=[victim]), wait=True)
    await client.close()

    env = {
        **os.environ,
        "DATA_DIR": str(s.data_dir),
        "VECTOR_STORE": "qdrant",
        "QDRANT_URL": str(qdrant_dir),
        "LOG_LEVEL": "WARNING",
    }
    code, out, err = await _cli(env, "verify", "--json")
    assert code == 1, err
    assert json.loads(out) | {"chunks": 0, "points": 0} == {
        "chunks": 0,
        "points": 0,
        "missing_points": 1,
        "orphan_points": 0,
        "mismatched_points": 0,
        "in_sync": False,
        "fixed": False,
    }
    code, out, err = await _cli(env, "repair")
    assert code == 0 and "missing_points=1" in out and "fixed=True" in out, err
    code, out, err = await _cli(env, "verify")
    assert code == 0 and "in_sync=True" in out, err
