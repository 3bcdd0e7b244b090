"""Reciprocal-rank fusion and budget trimming (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_web_ingest.search.fusion import reciprocal_rank_fusion, share_budget, trim_text


def test_rrf_rewards_agreement_and_records_legs() -> None:
    fused = reciprocal_rank_fusion({"dense": [(1, 0.9), (2, 0.8), (3, 0.7)], "lexical": [(3, 5.0), (1, 4.0)]}, k=60)
    assert [f.chunk_id for f in fused] == [1, 3, 2]
    first = fused[0]
    assert first.score == pytest.approx(1 / 61 + 1 / 62)
    assert {(leg.leg, leg.rank) for leg in first.legs} == {("dense", 1), ("lexical", 2)}


@pytest.mark.parametrize(
    ("weights", "winner"),
    [({"dense": 1.0, "lexical": 1.0}, 10), ({"dense": 3.0, "lexical": 1.0}, 10), ({"dense": 0.1, "lexical": 1.0}, 20)],
)
def test_rrf_weights(weights: dict[str, float], winner: int) -> None:
    fused = reciprocal_rank_fusion({"dense": [(10, 1.0), (20, 0.5)], "lexical": [(20, 1.0), (10, 0.5)]}, weights, k=1)
    if weights["dense"] == weights["lexical"]:
        assert fused[0].score == fused[1].score  # tie keeps first-seen order
    assert fused[0].chunk_id == winner


def test_rrf_ignores_duplicate_ids_within_a_leg() -> None:
    fused = reciprocal_rank_fusion({"dense": [(1, 1.0), (1, 0.9), (2, 0.8)]}, k=60)
    assert [f.chunk_id for f in fused] == [1, 2]
    assert fused[1].legs[0].rank == 3


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
