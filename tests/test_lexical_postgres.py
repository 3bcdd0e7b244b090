"""The BM25 leg on PostgreSQL: operators only when written, collection filters, back-fill of older chunks."""

from __future__ import annotations

from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest


async def _lexical(rt: Runtime, query: str, **kwargs: object) -> list:
    res = await rt.pipeline.search(SearchRequest.create(rt.settings, query, mode="lexical", **kwargs))  # type: ignore[arg-type]
    return list(res.hits)


async def test_operators_filter_only_when_written(clean: Runtime, site_url: str) -> None:
    for name in ("manual.html", "tides.html"):
        await clean.pipeline.index_page(f"{site_url}/retrieval/{name}")
    loose = await _lexical(clean, "tide table harbour")
    assert len({h.url for h in loose}) == 1 and loose[0].url.endswith("tides.html")
    phrase = await _lexical(clean, '"high and low water"')
    assert phrase and all("high and low water" in h.text.lower() for h in phrase)
    excluded = await _lexical(clean, "widget -accessibility")
    assert excluded and all("accessib" not in h.text.lower() for h in excluded)
    assert any("accessib" in h.text.lower() for h in await _lexical(clean, "widget accessibility"))


async def test_a_collection_filter_reads_only_that_collection(clean: Runtime, site_url: str) -> None:
    await clean.pipeline.index_page(f"{site_url}/retrieval/manual.html", collection="big")
    await clean.pipeline.index_page(f"{site_url}/retrieval/dom.html", collection="small")
    hits = await _lexical(clean, "widget node identifier", collection="small")
    assert hits and all(h.collection == "small" for h in hits)
    hits = await _lexical(clean, "widget node identifier", collection="big", url_prefix=f"{site_url}/retrieval/man")
    assert hits and all(h.url.endswith("manual.html") for h in hits)


async def test_chunks_stored_before_the_postings_existed_are_back_filled(clean: Runtime, site_url: str) -> None:
    await clean.pipeline.index_page(f"{site_url}/retrieval/dom.html")
    before = [h.chunk_id for h in await _lexical(clean, "getElementById")]
    async with clean.store.catalog.db.pool.connection() as conn:  # the state a database migrated from 0005 is in
        await conn.execute("DELETE FROM chunk_lexical_postings")
        await conn.execute("UPDATE chunks SET has_lexical = false")
    assert await _lexical(clean, "getElementById") == []
    await clean.store.open()  # what a server start does
    assert [h.chunk_id for h in await _lexical(clean, "getElementById")] == before
    async with clean.store.catalog.db.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM chunks WHERE NOT has_lexical")
        assert (await cur.fetchone())[0] == 0
