"""The BM25 leg on PostgreSQL: operators only when written, filters, back-fill of older chunks; code share."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_web_ingest.models import code_share
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest

MIGRATION = Path(__file__).resolve().parent.parent / "migrations" / "0006_lexical_postings.sql"


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


async def test_the_migration_computes_code_share_as_the_writer_does(clean: Runtime, site_url: str) -> None:
    """Pages stored before the code_share column get, from SQL, the share models.code_share gives new pages."""
    for name in ("source.html", "manual.html", "dom.html"):
        await clean.pipeline.index_page(f"{site_url}/retrieval/{name}")
    sql = MIGRATION.read_text().split("-- migrate:up", 1)[1].split("-- migrate:down", 1)[0]
    update = sql[sql.index("UPDATE pages SET code_share") :].split(";", 1)[0]
    async with clean.store.catalog.db.pool.connection() as conn:
        cur = await conn.execute("SELECT id, code_share FROM pages ORDER BY id")
        written = dict(await cur.fetchall())
        cur = await conn.execute("SELECT page_id, text FROM chunks ORDER BY page_id, ordinal")
        texts: dict[int, list[str]] = {}
        for page_id, text in await cur.fetchall():
            texts.setdefault(page_id, []).append(text)
        await conn.execute("UPDATE pages SET code_share = 0")
        await conn.execute(update)
        cur = await conn.execute("SELECT id, code_share FROM pages ORDER BY id")
        migrated = dict(await cur.fetchall())
    assert migrated == pytest.approx(written)
    assert written == pytest.approx({page: code_share(t) for page, t in texts.items()})
    assert max(written.values()) > 0.8 and min(written.values()) == 0
