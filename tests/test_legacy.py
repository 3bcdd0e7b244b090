"""USE_UNIFIED_PIPELINE: both pipelines share one store; switching either way needs no re-index and loses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mcp_web_ingest.interface.server import HealthResult
from mcp_web_ingest.legacy import LEGACY
from mcp_web_ingest.pipeline import PolicyPipeline
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest

pytestmark = pytest.mark.both_backends


@pytest.fixture
async def legacy(clean: Runtime) -> AsyncIterator[Runtime]:
    """A second runtime on the same database, as after `export USE_UNIFIED_PIPELINE=false` and a restart."""
    async with Runtime.open(clean.settings.model_copy(update={"use_unified_pipeline": False})) as rt:
        yield rt


async def _pipelines(rt: Runtime) -> dict[str, int]:
    async with rt.db.pool.connection() as conn:
        rows = await (await conn.execute("SELECT pipeline, count(*) FROM chunks GROUP BY pipeline")).fetchall()
    return {p: int(n) for p, n in rows}


async def test_legacy_pipeline_is_selected_and_reported(legacy: Runtime) -> None:
    assert isinstance(legacy.pipeline, PolicyPipeline) and legacy.pipeline.policy is LEGACY
    health = HealthResult(**await legacy.health())
    assert health.pipeline == "legacy"


async def test_switching_both_ways_loses_nothing(clean: Runtime, legacy: Runtime, site_url: str) -> None:
    unified = clean
    install, config = f"{site_url}/guide/install.html", f"{site_url}/guide/config.html"
    await unified.pipeline.index_page(install)
    res = await legacy.pipeline.search(
        SearchRequest.create(legacy.settings, "installing behind a corporate proxy", k=3)
    )
    assert res.hits[0].url == install and res.legs_used == ("dense",)

    out = await legacy.pipeline.index_page(config)
    assert out.chunk_count >= 1
    res = await unified.pipeline.search(SearchRequest.create(unified.settings, "quux retention window precedence", k=3))
    assert res.hits[0].url == config
    by_pipeline = await _pipelines(unified)
    assert set(by_pipeline) == {"unified", "legacy"}
    counts = await unified.store.catalog.counts()

    # Flip a few times: re-indexing unchanged pages from either side is a no-op, and counts stay exact.
    for rt in (legacy, unified, legacy, unified):
        for url in (install, config):
            assert (await rt.pipeline.index_page(url)).unchanged
        assert await rt.store.catalog.counts() == counts
        assert await _pipelines(rt) == by_pipeline


async def test_legacy_chunks_have_no_heading_context_and_search_is_dense_only(legacy: Runtime, site_url: str) -> None:
    out = await legacy.pipeline.index_page(f"{site_url}/guide/install.html")
    rows = await legacy.store.catalog.get_chunks(range(1, out.chunk_count + 100))
    assert rows and all(r.section_path == (out.title,) and r.anchor is None for r in rows.values())
    res = await legacy.pipeline.search(SearchRequest.create(legacy.settings, "froobnicator proxy", mode="lexical"))
    assert res.mode == "dense" and res.legs_used == ("dense",)
    assert res.notes and "legacy" in res.notes[0]
