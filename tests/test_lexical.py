"""BM25 term vectors (both stores' lexical leg): code-aware terms, stable ids, weights, the heading field, IDF."""

from __future__ import annotations

import sys

import pytest

from mcp_web_ingest.encoders.lexical import (
    HASH_SPACE,
    bm25_idf,
    document_vector,
    query_vector,
    term_id,
    terms,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Running the tests", ["run", "test"]),  # stemmed like PostgreSQL's english config; stopwords dropped
        ("asyncio.gather()", ["asyncio.gather", "asyncio", "gather"]),  # dotted names whole and in parts
        ("functools.lru_cache", ["functools.lru_cache", "functool", "lru", "cach"]),
        ("HTTP 404 on /api/v2", ["http", "404", "api", "v2"]),
        ("", []),
        ("the of and", []),
        ("naïve café", ["naïv", "café"]),
        # camelCase and PascalCase names whole and in their humps (acronyms kept together)
        ("getElementById", ["getelementbyid", "get", "element", "id"]),
        ("HTTPServer", ["httpserver", "http", "server"]),
        ("QuerySet.select_related", ["queryset.select_related", "queryset", "queri", "set", "select", "relat"]),
        ("snake_case_name", ["snake_case_name", "snake", "case", "name"]),
    ],
)
def test_terms(text: str, expected: list[str]) -> None:
    assert terms(text) == expected


def test_term_ids_are_stable_and_in_range() -> None:
    assert term_id("gather") == term_id("gather") and term_id("gather") != term_id("gathers")
    assert all(0 <= term_id(t) < HASH_SPACE for t in ("a", "asyncio.gather", "x" * 63, "日本"))
    assert term_id("gather") == 75096605  # the id is persisted in Qdrant: it must never change between releases


def test_document_vector_saturates_term_frequency_and_normalises_length() -> None:
    once = document_vector("retention window")
    many = document_vector("retention " * 10 + "window")
    idx = once.indices.index(term_id("retent"))
    assert many.values[many.indices.index(term_id("retent"))] > once.values[idx]
    assert many.values[many.indices.index(term_id("retent"))] < 10 * once.values[idx]  # saturated, not linear
    long = document_vector("retention window " + "filler words here " * 100)
    assert long.values[long.indices.index(term_id("retent"))] < once.values[idx]  # longer chunk, lower weight
    assert list(once.indices) == sorted(once.indices)


def test_query_vector_weights_each_distinct_term_once() -> None:
    vec = query_vector("gather gather asyncio.gather")
    assert sorted(vec.indices) == sorted({term_id("gather"), term_id("asyncio"), term_id("asyncio.gather")})
    assert set(vec.values) == {1.0}
    assert query_vector("the and of").indices == ()


def test_heading_words_weigh_more_than_body_words() -> None:
    vec = document_vector("configure the retention window here", headings=("Retention",))
    plain = document_vector("configure the retention window here")
    weight = dict(zip(vec.indices, vec.values, strict=True))
    assert weight[term_id("retent")] > weight[term_id("window")]  # the heading word outweighs a body word
    assert dict(zip(plain.indices, plain.values, strict=True))[term_id("retent")] == pytest.approx(
        dict(zip(plain.indices, plain.values, strict=True))[term_id("window")]
    )


def test_idf_is_positive_and_falls_with_document_frequency() -> None:
    assert bm25_idf(1, 1000) > bm25_idf(10, 1000) > bm25_idf(900, 1000) > 0
    assert bm25_idf(1000, 1000) > 0 and bm25_idf(5000, 1000) == bm25_idf(1000, 1000)  # clamped, never negative


def test_terms_are_the_same_when_many_threads_stem_at_once() -> None:
    # Pages' BM25 vectors are computed on worker threads; a shared Snowball stemmer failed pages (IndexError).
    from concurrent.futures import ThreadPoolExecutor

    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [f"{a}{b}{c}" for a in letters for b in letters for c in letters[:8]]  # unique: no stem-cache hits
    texts = [" ".join(f"connect{w}ations relation{w}izing hope{w}fulness" for w in words[i::64]) for i in range(64)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch inside stemWord, as they now and then do under load
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            threaded = list(pool.map(terms, texts))
    finally:
        sys.setswitchinterval(interval)
    assert threaded == [terms(t) for t in texts]  # the second pass hits the stem cache: the reference
