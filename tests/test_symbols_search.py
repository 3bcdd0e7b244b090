"""Symbol extraction end to end: stored per chunk, `symbol=` filtering, and exact-symbol queries on the Python docs."""

from __future__ import annotations

import pytest
import pytest_asyncio

from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest

pytestmark = pytest.mark.both_backends

PAGES = ("library/asyncio-task.html", "library/itertools.html", "library/json.html", "library/functools.html")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def docs(backend_runtime: Runtime, docs_url: str) -> Runtime:
    """The test runtime with a few real Python documentation pages indexed (once for the module and backend)."""
    runtime = backend_runtime
    await runtime.store.truncate_all()
    for page in PAGES:
        await runtime.pipeline.index_page(f"{docs_url}/{page}")
    return runtime


@pytest.mark.parametrize(
    ("query", "page", "anchor"),
    [
        ("asyncio.gather", "library/asyncio-task.html", "asyncio.gather"),
        ("itertools.groupby", "library/itertools.html", "itertools.groupby"),
        ("json.dumps", "library/json.html", "json.dumps"),
        ("functools.lru_cache", "library/functools.html", "functools.lru_cache"),
        ("asyncio.create_task", "library/asyncio-task.html", "asyncio.create_task"),
    ],
)
async def test_symbol_query_puts_the_defining_chunk_first(docs: Runtime, query: str, page: str, anchor: str) -> None:
    res = await docs.pipeline.search(SearchRequest.create(docs.settings, query, k=5))
    top = res.hits[0]
    assert top.url.endswith(page)
    assert f"`{query}(" in top.text or f"{query}(" in top.text  # the chunk with the API signature
    assert any(leg.leg == "symbol" for leg in top.legs)


async def test_symbol_filter_keeps_only_chunks_defining_or_using_it(docs: Runtime) -> None:
    res = await docs.pipeline.search(
        SearchRequest.create(docs.settings, "run tasks concurrently", k=10, symbol="asyncio.gather")
    )
    assert res.hits and all(h.url.endswith("asyncio-task.html") for h in res.hits)
    assert all("gather" in h.text for h in res.hits)
    none = await docs.pipeline.search(
        SearchRequest.create(docs.settings, "run tasks concurrently", symbol="no_such_symbol_anywhere")
    )
    assert none.hits == ()


async def test_symbols_are_stored_per_chunk(docs: Runtime) -> None:
    async with docs.db.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT kind, language FROM chunk_symbols WHERE key = 'asyncio.gather' AND role = 0 AND exact"
            )
        ).fetchall()
    assert rows == [("function", "python")]


async def test_natural_language_queries_are_not_pinned(docs: Runtime) -> None:
    res = await docs.pipeline.search(
        SearchRequest.create(docs.settings, "how do I group consecutive items by a key", k=5)
    )
    assert all(leg.leg != "symbol" for h in res.hits for leg in h.legs)
    assert res.hits[0].url.endswith("itertools.html")


async def test_symbols_on_the_test_site(docs: Runtime, site_url: str) -> None:
    out = await docs.pipeline.index_page(f"{site_url}/guide/config.html", collection="site")
    async with docs.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT DISTINCT s.name FROM chunk_symbols s JOIN chunks c ON c.id = s.chunk_id WHERE c.page_id = %s",
            (out.page_id,),
        )
        names = {r[0] for r in await cur.fetchall()}
    assert names  # the page's Python code blocks yield symbols
