"""Retrieval behaviours on small real pages, on both vector stores: code-aware terms, page-aware fusion, caps."""

from __future__ import annotations

import pytest

from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest
from mcp_web_ingest.search.retriever import Retriever

pytestmark = pytest.mark.both_backends

PAGES = ("manual.html", "dom.html", "tides.html")


async def _index(rt: Runtime, site_url: str) -> None:
    for name in PAGES:
        await rt.pipeline.index_page(f"{site_url}/retrieval/{name}")


async def _search(rt: Runtime, query: str, mode: str = "hybrid", k: int = 10) -> list:
    res = await rt.pipeline.search(SearchRequest.create(rt.settings, query, k=k, mode=mode))
    return list(res.hits)


@pytest.mark.parametrize("query", ["getElementById", "element by id", "document getElementById", "get element"])
async def test_code_names_match_whole_and_in_parts(clean: Runtime, site_url: str, query: str) -> None:
    await _index(clean, site_url)
    hits = await _search(clean, query, mode="lexical")
    assert hits and hits[0].url.endswith("/retrieval/dom.html")
    assert "getElementById" in hits[0].text


async def test_a_first_place_in_one_leg_survives_when_the_other_finds_nothing(clean: Runtime, site_url: str) -> None:
    await _index(clean, site_url)
    query = "lunar ebb"  # neither word is on any page; the meaning is the tides page
    assert await _search(clean, query, mode="lexical") == []
    dense = await _search(clean, query, mode="dense")
    assert dense[0].url.endswith("/retrieval/tides.html")
    hybrid = await _search(clean, query)
    assert hybrid[0].url == dense[0].url


async def test_one_long_page_fills_at_most_its_cap_and_names_its_other_sections(clean: Runtime, site_url: str) -> None:
    await _index(clean, site_url)
    cap = clean.settings.search_chunks_per_page
    hits = await _search(clean, "widget events palette layout accessibility testing")
    manual = [h for h in hits if h.url.endswith("/retrieval/manual.html")]
    assert hits[0].url.endswith("/retrieval/manual.html")
    assert 1 <= len(manual) <= cap < 6  # six sections match; the page may fill `cap` results
    assert len(hits) > len(manual)  # the other pages still get their places
    also = dict(manual[0].also_matched)
    shown = {" › ".join(h.section_path) for h in manual}
    assert also and not shown & set(also)  # sections named once: shown or listed
    assert len(shown | set(also)) >= 5  # most of the six matching sections surface, shown or listed
    assert all(anchor for label, anchor in also.items() if "›" in label)  # a listed heading links to its section
    assert all(h.also_matched == () for h in manual[1:])


async def test_headings_count_more_than_body_text(clean: Runtime, site_url: str) -> None:
    await _index(clean, site_url)
    hits = await _search(clean, "widget accessibility", mode="lexical")
    assert hits[0].section_path[-1] == "Widget accessibility"


async def test_a_source_listing_ranks_lower_by_the_code_page_penalty(clean: Runtime, site_url: str) -> None:
    await _index(clean, site_url)
    await clean.pipeline.index_page(f"{site_url}/retrieval/source.html")
    request = SearchRequest.create(clean.settings, "widget palette colours background border accent", k=10)
    penalised = {h.url: h.score for h in (await clean.pipeline.search(request)).hits}
    plain = Retriever(
        clean.settings.model_copy(update={"search_code_page_penalty": 0.0}), clean.embedder, clean.store, clean.metrics
    )
    unpenalised = {h.url: h.score for h in (await plain.search(request, "hybrid")).hits}
    listing, manual = f"{site_url}/retrieval/source.html", f"{site_url}/retrieval/manual.html"
    assert penalised[listing] == pytest.approx((1 - clean.settings.search_code_page_penalty) * unpenalised[listing])
    assert penalised[manual] == pytest.approx(unpenalised[manual])  # prose pages keep their score
    ids = [h.chunk_id for h in (await clean.pipeline.search(request)).hits]
    shares = {ref.page_id: ref.code_share for ref in (await clean.store.catalog.chunk_pages(ids)).values()}
    assert max(shares.values()) > 0.8 and min(shares.values()) < 0.2  # the listing is nearly all code, prose is not
