"""The unified pipeline end to end on the real stack: local site over HTTP → extract → chunk → MiniLM → PostgreSQL."""

from __future__ import annotations

import aiohttp
import pytest

from mcp_web_ingest.errors import ExtractError, FetchError, InvalidInputError, StoreError
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest

pytestmark = pytest.mark.both_backends


async def _counts(rt: Runtime) -> dict[str, int]:
    return await rt.store.catalog.counts()


async def test_index_then_search_finds_section_with_deep_link(clean: Runtime, site_url: str) -> None:
    rt = clean
    out = await rt.pipeline.index_page(f"{site_url}/guide/install.html")
    assert out.chunk_count >= 3 and not out.unchanged
    assert out.title.startswith("Installing the Froobnicator")
    assert {"fetch", "extract", "chunk", "embed", "store", "total"} <= out.timings_ms.keys()
    await rt.pipeline.index_page(f"{site_url}/guide/config.html")

    res = await rt.pipeline.search(
        SearchRequest.create(rt.settings, "how do I install it behind a corporate proxy", k=5)
    )
    top = res.hits[0]
    assert top.url == f"{site_url}/guide/install.html"
    assert top.deep_link == f"{site_url}/guide/install.html#pip-behind-a-proxy"
    assert top.section_path[-1] == "Installing behind a proxy"
    assert {leg.leg for leg in top.legs} == {"dense", "lexical"}
    assert res.legs_used == ("dense", "lexical")

    res = await rt.pipeline.search(SearchRequest.create(rt.settings, "set retention windows from Python code", k=3))
    assert res.hits[0].url.endswith("/guide/config.html")
    assert res.hits[0].anchor == "setting-windows-from-python"


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
async def test_each_mode_ranks_the_matching_page_first(clean: Runtime, site_url: str, mode: str) -> None:
    await clean.pipeline.index_page(f"{site_url}/guide/install.html")
    await clean.pipeline.index_page(f"{site_url}/guide/config.html")
    res = await clean.pipeline.search(
        SearchRequest.create(clean.settings, "quux retention window precedence", k=3, mode=mode)
    )
    assert res.mode == mode
    assert res.hits and res.hits[0].url.endswith("/guide/config.html")
    allowed = {"dense", "lexical"} if mode == "hybrid" else {mode}
    assert all(leg.leg in allowed for h in res.hits for leg in h.legs)


async def test_filters_by_collection_and_url_prefix(clean: Runtime, site_url: str) -> None:
    await clean.pipeline.index_page(f"{site_url}/guide/install.html", collection="install-docs")
    await clean.pipeline.index_page(f"{site_url}/guide/config.html")
    res = await clean.pipeline.search(SearchRequest.create(clean.settings, "quux retention", collection="install-docs"))
    assert res.hits and all(h.collection == "install-docs" and h.url.endswith("install.html") for h in res.hits)
    res = await clean.pipeline.search(
        SearchRequest.create(clean.settings, "froobnicator install", url_prefix=f"{site_url}/guide/config")
    )
    assert res.hits and all(h.url.endswith("config.html") for h in res.hits)
    res = await clean.pipeline.search(
        SearchRequest.create(clean.settings, "froobnicator", collection="no-such-collection")
    )
    assert res.hits == ()


async def test_unchanged_page_is_not_reembedded_and_changed_page_reuses_vectors(clean: Runtime, site_url: str) -> None:
    rt = clean
    url = f"{site_url}/etag.html"
    first = await rt.pipeline.index_page(url)
    batches = rt.metrics.embedding_batch_duration._sum.get()  # type: ignore[attr-defined]
    again = await rt.pipeline.index_page(url)
    assert again.unchanged and again.page_id == first.page_id and again.chunk_count == first.chunk_count
    assert rt.metrics.embedding_batch_duration._sum.get() == batches  # type: ignore[attr-defined]
    assert "embed" not in again.timings_ms

    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            body = await r.text()
        new_body = body.replace(
            "</body>", "<h2 id='added'>Added later</h2><p>A zymurgic appendix paragraph.</p></body>"
        )
        async with s.put(url, data=new_body.encode()) as r:
            assert r.status == 204
    changed = await rt.pipeline.index_page(url)
    assert not changed.unchanged and changed.page_id == first.page_id
    assert changed.reused_vectors >= 1
    assert (await _counts(rt))["pages"] == 1
    res = await rt.pipeline.search(SearchRequest.create(rt.settings, "zymurgic appendix", k=1))
    assert res.hits[0].anchor == "added"


async def test_a_text_embedded_anywhere_in_the_index_is_not_embedded_again(clean: Runtime, site_url: str) -> None:
    rt = clean
    url = f"{site_url}/guide/install.html"
    first = await rt.pipeline.index_page(url, collection="first")
    calls = rt.metrics.embedding_batch_duration._sum.get()  # type: ignore[attr-defined]
    copy = await rt.pipeline.index_page(url, collection="second")  # the same page in another collection
    assert copy.page_id != first.page_id and copy.chunk_count == first.chunk_count
    assert copy.reused_vectors == copy.chunk_count
    assert rt.metrics.embedding_batch_duration._sum.get() == calls  # type: ignore[attr-defined]
    res = await rt.pipeline.search(SearchRequest.create(rt.settings, "install", collection="second", k=1))
    assert res.hits and res.hits[0].page_id == copy.page_id


async def test_redirect_is_stored_under_the_final_url(clean: Runtime, site_url: str) -> None:
    out = await clean.pipeline.index_page(f"{site_url}/redirect")
    assert out.url == f"{site_url}/guide/install.html"
    again = await clean.pipeline.index_page(f"{site_url}/guide/install.html")
    assert again.unchanged and again.page_id == out.page_id


BAD_URLS = [
    ("", InvalidInputError),
    ("   ", InvalidInputError),
    ("guide/install.html", InvalidInputError),
    ("ftp://example.org/file", InvalidInputError),
    ("file:///etc/passwd", InvalidInputError),
    ("javascript:alert(1)", InvalidInputError),
]


@pytest.mark.parametrize(("url", "error"), BAD_URLS)
async def test_bad_urls_raise_and_store_nothing(clean: Runtime, url: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        await clean.pipeline.index_page(url)
    assert "URL" in str(info.value) or "url" in str(info.value)
    assert (await _counts(clean))["pages"] == 0


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/status/404", "404"),
        ("/status/500", "500"),
        ("/binary.bin", "no format that can be indexed"),
        ("/crawl/static/logo.png", "image/png"),
        ("/big.html?size=3000000", "limit"),
    ],
)
async def test_fetch_failures_raise_and_store_nothing(clean: Runtime, site_url: str, path: str, fragment: str) -> None:
    with pytest.raises(FetchError) as info:
        await clean.pipeline.index_page(site_url + path)
    assert fragment.lower() in str(info.value).lower()
    assert (await _counts(clean))["pages"] == 0


async def test_unreachable_host_and_empty_page(clean: Runtime, site_url: str) -> None:
    from .conftest import free_port

    with pytest.raises(FetchError):
        await clean.pipeline.index_page(f"http://127.0.0.1:{free_port()}/")
    with pytest.raises(ExtractError):
        await clean.pipeline.index_page(f"{site_url}/empty.html")
    assert (await _counts(clean))["pages"] == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"query": ""}, "empty"),
        ({"query": "   "}, "empty"),
        ({"query": "x" * 5000}, "limit"),
        ({"query": "ok", "k": 0}, "k must be"),
        ({"query": "ok", "k": 1000}, "k must be"),
        ({"query": "ok", "mode": "fuzzy"}, "mode"),
        ({"query": "ok", "collection": "bad name!"}, "collection"),
        ({"query": "ok", "max_chars": 10}, "max_chars"),
    ],
)
async def test_bad_search_arguments(clean: Runtime, kwargs: dict, fragment: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        await clean.pipeline.search(SearchRequest.create(clean.settings, **kwargs))
    assert fragment in str(info.value)


async def test_results_fit_the_character_budget(clean: Runtime, site_url: str) -> None:
    await clean.pipeline.index_page(f"{site_url}/guide/install.html")
    await clean.pipeline.index_page(f"{site_url}/guide/config.html")
    res = await clean.pipeline.search(SearchRequest.create(clean.settings, "froobnicator", k=10, max_chars=600))
    assert res.truncated
    assert sum(len(h.text) for h in res.hits) <= 600
    assert 1 <= len(res.hits) <= 3  # the budget shows at most three 200-character snippets


async def test_search_on_empty_index_returns_nothing(clean: Runtime) -> None:
    res = await clean.pipeline.search(SearchRequest.create(clean.settings, "anything at all"))
    assert res.hits == ()


async def test_failed_write_keeps_previous_version(clean: Runtime, site_url: str) -> None:
    """A page whose write fails midway (a vector of the wrong size) leaves the stored version intact."""
    import numpy as np

    from mcp_web_ingest.models import Chunk
    from mcp_web_ingest.storage.records import PageRecord

    url = f"{site_url}/guide/install.html"
    out = await clean.pipeline.index_page(url)
    before = await clean.store.catalog.get_page("default", out.url)
    assert before is not None
    bad = [Chunk(0, "a", ("t",), None, 1, "h0"), Chunk(1, "b", ("t",), None, 1, "h1")]
    vectors = [np.ones(384, dtype=np.float32), np.ones(5, dtype=np.float32)]
    with pytest.raises(StoreError):
        await clean.store.replace_page("default", PageRecord(out.url, "new", "x", "unified"), bad, vectors)
    after = await clean.store.catalog.get_page("default", out.url)
    assert after == before
    assert (await _counts(clean))["chunks"] == out.chunk_count


async def test_python_docs_asyncio_gather_query(clean: Runtime, docs_url: str) -> None:
    for page in ("library/asyncio-task.html", "library/json.html", "library/itertools.html"):
        await clean.pipeline.index_page(f"{docs_url}/{page}")
    res = await clean.pipeline.search(
        SearchRequest.create(clean.settings, "run several coroutines concurrently and collect their results", k=5)
    )
    assert res.hits[0].url.endswith("library/asyncio-task.html")
    res = await clean.pipeline.search(
        SearchRequest.create(clean.settings, "serialize a Python object to a JSON formatted string", k=3)
    )
    assert res.hits[0].url.endswith("library/json.html")
    res = await clean.pipeline.search(SearchRequest.create(clean.settings, "itertools.groupby", k=5, mode="lexical"))
    assert any("groupby" in h.text for h in res.hits[:3])


async def test_chunk_limit_per_page(clean: Runtime, site_url: str) -> None:
    from mcp_web_ingest.pipeline import PolicyPipeline

    small = clean.settings.model_copy(update={"max_chunks_per_page": 2})
    pipeline = PolicyPipeline(small, clean.fetcher, clean.embedder, clean.store, clean.metrics)
    with pytest.raises(ExtractError, match="MAX_CHUNKS_PER_PAGE=2"):
        await pipeline.index_page(f"{site_url}/guide/install.html")
    assert (await _counts(clean))["pages"] == 0
