"""Page-aware fusion and budget trimming (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_web_ingest.search.fusion import FusedPage, fuse_pages, min_max, page_evidence, share_budget, trim_text

PAGE_OF = {1: 100, 2: 100, 3: 200, 4: 300, 5: 300, 6: 400}


def _pages(fused: list[FusedPage]) -> list[int]:
    return [p.page_id for p in fused]


def test_page_evidence_sums_best_chunks_with_decay() -> None:
    evidence = page_evidence([(1, 0.8), (3, 0.7), (2, 0.6), (4, 0.5)], PAGE_OF)
    assert evidence == pytest.approx({100: 0.8 + 0.5 * 0.6, 200: 0.7, 300: 0.5})
    many = [(i, 1.0) for i in range(10)]
    assert page_evidence(many, dict.fromkeys(range(10), 7)) == pytest.approx({7: 1 + 0.5 + 0.25})  # three count


def test_min_max_scales_within_the_list() -> None:
    assert min_max({1: 2.0, 2: 4.0, 3: 3.0}) == {1: 0.0, 2: 1.0, 3: 0.5}
    assert min_max({1: 5.0, 2: 5.0}) == {1: 1.0, 2: 1.0}
    assert min_max({}) == {}


def test_a_leg_alone_keeps_its_page_order() -> None:
    """A page dense ranks first stays first when the lexical leg found nothing."""
    dense = [(3, 0.9), (1, 0.8), (4, 0.7), (6, 0.6)]
    for method in ("convex", "rrf"):
        fused = fuse_pages({"dense": dense, "lexical": []}, PAGE_OF, method=method)  # type: ignore[arg-type]
        assert _pages(fused) == [200, 100, 300, 400]


def test_convex_keeps_a_clear_first_place_that_rrf_gives_away() -> None:
    """RRF: a page in the middle of both lists beats one leg's clear winner; the score margins say otherwise."""
    dense = [(1, 0.95)] + [(10 + i, 0.40 - 0.001 * i) for i in range(8)] + [(6, 0.39)]
    lexical = [(20 + i, 9.0 - 0.1 * i) for i in range(8)] + [(6, 8.0), (29, 0.5)]
    page_of = {**PAGE_OF, **{i: i for i in range(10, 30)}}
    rrf = _pages(fuse_pages({"dense": dense, "lexical": lexical}, page_of, method="rrf", rrf_k=60))
    convex = _pages(fuse_pages({"dense": dense, "lexical": lexical}, page_of, method="convex"))
    assert rrf[0] == 400  # 10th in one list and 9th in the other: RRF rewards appearing twice
    assert 100 in convex[:2] and convex.index(400) > convex.index(100)  # dense's clear winner stays on top


def test_weights_shift_the_balance() -> None:
    legs = {"dense": [(1, 1.0), (3, 0.0)], "lexical": [(3, 1.0), (1, 0.0)]}
    assert _pages(fuse_pages(legs, PAGE_OF, {"dense": 2.0, "lexical": 1.0}))[0] == 100
    assert _pages(fuse_pages(legs, PAGE_OF, {"dense": 1.0, "lexical": 2.0}))[0] == 200


def test_chunks_of_a_page_are_ordered_and_carry_their_legs() -> None:
    fused = fuse_pages({"dense": [(2, 0.9), (1, 0.5), (2, 0.1)], "lexical": [(1, 3.0)]}, PAGE_OF)
    page = fused[0]
    assert page.page_id == 100 and [c.chunk_id for c in page.chunks] == [2, 1]  # a tie keeps first-seen order
    first = {c.chunk_id: c for c in page.chunks}
    assert {(leg.leg, leg.rank) for leg in first[1].legs} == {("dense", 2), ("lexical", 1)}
    assert [leg.rank for leg in first[2].legs] == [1]  # a leg votes once per chunk, at its best place


def test_chunks_missing_from_the_catalog_are_left_out() -> None:
    fused = fuse_pages({"dense": [(999, 1.0), (3, 0.5)]}, PAGE_OF)
    assert _pages(fused) == [200]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("hello wonderful world", 19, "hello wonderful…"),
        ("hello wonderful world", 15, "hello wonderfu…"),  # a word boundary too far back is not used
        ("abcdefghij", 5, "abcd…"),
        ("abc", 1, "…"),
    ],
)
def test_trim_text(text: str, limit: int, expected: str) -> None:
    assert trim_text(text, limit) == expected


@given(st.text(), st.integers(min_value=1, max_value=500))
def test_trim_text_never_exceeds_limit(text: str, limit: int) -> None:
    out = trim_text(text, limit)
    assert len(out) <= limit
    assert out == text or out.endswith("…")


def test_share_budget_gives_short_texts_all_and_splits_the_rest() -> None:
    assert share_budget([100, 5000, 5000], 2100, minimum=50) == [100, 1000, 1000]
    assert share_budget([10, 20], 1000) == [10, 20]
    assert share_budget([5000] * 5, 1000, minimum=200) == [200] * 5


@pytest.mark.parametrize(
    ("query", "strict"),
    [
        ("handle Ctrl-C or SIGTERM in a program", False),
        ("run coroutines concurrently", False),
        ('"exact phrase" here', True),
        ("json -yaml", True),
        ("well-known names", False),
    ],
)
def test_lexical_strict_mode_only_for_operators(query: str, strict: bool) -> None:
    from mcp_web_ingest.storage.records import tsquery_text_is_strict

    assert tsquery_text_is_strict(query) is strict
