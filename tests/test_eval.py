"""tools/eval.py: page-level metrics on hand-made rankings, the shipped question set, and a small in-process run."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import pytest

from mcp_web_ingest.runtime import Runtime
from tools.eval import (
    DEFAULT_QUESTIONS,
    METRICS,
    Question,
    aggregate,
    choose_pages,
    dedupe,
    evaluate,
    hit_at,
    load_questions,
    markdown_table,
    ndcg_at,
    page_url,
    percentile,
    reciprocal_rank,
    score_ranking,
)

from .conftest import PYTHON_DOCS

REL = {"a", "b"}


@pytest.mark.parametrize(
    ("ranked", "k", "expected"),
    [(["a"], 1, 1.0), (["x", "a"], 1, 0.0), (["x", "y", "b"], 5, 1.0), ([], 10, 0.0), (["x"] * 12 + ["a"], 10, 0.0)],
)
def test_hit_at(ranked: list[str], k: int, expected: float) -> None:
    """A hit needs a relevant page within the first k."""
    assert hit_at(ranked, REL, k) == expected


@pytest.mark.parametrize(
    ("ranked", "expected"),
    [(["a"], 1.0), (["x", "b"], 0.5), (["x", "y", "z", "a", "b"], 0.25), (["x"] * 10 + ["a"], 0.0), ([], 0.0)],
)
def test_reciprocal_rank(ranked: list[str], expected: float) -> None:
    """MRR@10 counts only the first relevant page, and only within the top 10."""
    assert reciprocal_rank(ranked, REL) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("ranked", "rel", "expected"),
    [
        (["a", "b"], {"a", "b"}, 1.0),
        (["a"], {"a"}, 1.0),
        (["x", "a"], {"a"}, 1 / math.log2(3)),
        (["x", "a", "b"], {"a", "b"}, (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))),
        (["a", "x"], {"a", "b"}, 1 / (1 + 1 / math.log2(3))),
        (["x", "y"], {"a"}, 0.0),
    ],
)
def test_ndcg(ranked: list[str], rel: set[str], expected: float) -> None:
    """Binary nDCG@10 normalised by the ideal ranking of all relevant pages."""
    assert ndcg_at(ranked, rel) == pytest.approx(expected)


def test_score_ranking_dedupes_pages_in_rank_order() -> None:
    """Chunks of one page count once, at the page's first position."""
    ranked = ["x", "x", "x", "a", "a", "b"]
    assert dedupe(ranked) == ["x", "a", "b"]
    scores = score_ranking(ranked, REL)
    assert scores["hit@1"] == 0.0
    assert scores["mrr@10"] == pytest.approx(0.5)
    assert set(scores) == set(METRICS)


def test_aggregate_and_percentile() -> None:
    """Means over questions; interpolated percentiles."""
    rows = [{"metrics": dict.fromkeys(METRICS, v), "ms": ms} for v, ms in ((1.0, 10.0), (0.0, 30.0))]
    summary = aggregate(rows)
    assert summary["mrr@10"] == 0.5
    assert summary["p50_ms"] == 20.0
    assert percentile([1, 2, 3, 4, 5], 0.95) == pytest.approx(4.8)
    assert percentile([], 0.5) == 0.0
    assert "| hybrid |" in markdown_table({"hybrid": summary})


def test_page_url_and_choose_pages() -> None:
    """Relative paths resolve under the base URL; relevant pages come first and the limit holds."""
    assert page_url("http://127.0.0.1:1/", "library/json.html") == "http://127.0.0.1:1/library/json.html"
    assert page_url("http://h", "https://other.example/x") == "https://other.example/x"
    qs = [Question("q", ("c.html", "missing.html"))]
    chosen = choose_pages([f"{c}.html" for c in "abcdefgh"], qs, limit=4)
    assert chosen[0] == "c.html"
    assert len(chosen) == 4
    assert "missing.html" not in chosen


@pytest.mark.skipif(not PYTHON_DOCS.is_dir(), reason="python3.11-doc is not installed")
def test_question_set_answers_are_on_their_pages() -> None:
    """The shipped set has >= 40 questions, and every answer page exists and contains the evidence term."""
    lines = [json.loads(line) for line in DEFAULT_QUESTIONS.read_text().splitlines() if line.strip()]
    assert len(lines) >= 40
    assert len(load_questions(DEFAULT_QUESTIONS)) == len(lines)
    cache: dict[str, str] = {}
    for item in lines:
        for rel in item["rel"]:
            path = PYTHON_DOCS / rel
            assert path.is_file(), rel
            if rel not in cache:  # grep the page's text: the HTML without its tags
                cache[rel] = html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))
            assert item["evidence"] in cache[rel], (item["q"], rel)


SMOKE_QUESTIONS = [
    Question("generate a secure random token for a password reset link", ("library/secrets.html",)),
    Question("insert an item into a list while keeping it sorted", ("library/bisect.html",)),
    Question("copy a nested list so changes do not affect the original", ("library/copy.html",)),
    Question("compress a file with gzip", ("library/gzip.html",)),
    Question("find files matching a wildcard pattern like *.py", ("library/glob.html", "library/fnmatch.html")),
]
SMOKE_DISTRACTORS = ["library/keyword.html", "library/colorsys.html", "library/getpass.html", "library/reprlib.html"]


async def test_evaluate_small_run(clean: Runtime, docs_url: str) -> None:
    """Index ~10 pages through the pipeline, score every mode and BM25; a second run finds every page unchanged."""
    pages = choose_pages([*{r for q in SMOKE_QUESTIONS for r in q.rel}, *SMOKE_DISTRACTORS], SMOKE_QUESTIONS, None)
    report = await evaluate(clean, SMOKE_QUESTIONS, Path(PYTHON_DOCS), docs_url, pages)
    assert report["indexing"]["indexed"] == len(pages) == 10
    assert set(report["summary"]) == {"dense", "lexical", "hybrid", "bm25"}
    for mode, rows in report["per_question"].items():
        assert len(rows) == len(SMOKE_QUESTIONS), mode
        for row in rows:
            assert all(0.0 <= row["metrics"][m] <= 1.0 for m in METRICS)
            assert row["first_rank"] is None or row["metrics"]["mrr@10"] == pytest.approx(1 / row["first_rank"])
    # Some mode must find something on these easy questions, or the URL mapping is broken.
    assert max(s["hit@10"] for s in report["summary"].values()) > 0.5
    again = await evaluate(
        clean, SMOKE_QUESTIONS[:1], Path(PYTHON_DOCS), docs_url, pages, modes=["lexical"], bm25=False
    )
    assert again["indexing"]["unchanged"] == len(pages)
    assert set(again["summary"]) == {"lexical"}
