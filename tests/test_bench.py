"""tools/bench.py on 3 pages and 200 synthetic chunks: every figure is reported (no timing assertions)."""

from __future__ import annotations

import numpy as np

from mcp_web_ingest.runtime import Runtime
from tools.bench import (
    floor_by_mode,
    latency_summary,
    markdown_table,
    run_bench,
    synthetic_chunks,
    unit_vectors,
)

from .conftest import PYTHON_DOCS

REPORT_KEYS = {
    "pages",
    "chunks",
    "embedding_model",
    "extract_pages_per_s",
    "fetch_extract_pages_per_s",
    "embedder_only",
    "index_first",
    "index_chunks_per_s",
    "pipeline_efficiency",
    "reindex_unchanged",
    "reindex_ratio",
    "search",
    "single_page_index",
    "synthetic_insert",
    "synthetic_search",
    "peak_rss_mb",
    "rss_mb",
}
PAGES = ["library/secrets.html", "library/copy.html", "library/colorsys.html"]
QUERIES = ["generate a secure random token", "deep copy a nested list", "convert RGB to HSV"]


def test_helpers() -> None:
    """Percentile summaries, floors, synthetic vectors and chunks."""
    s = latency_summary([1.0, 2.0, 3.0])
    assert (s["p50_ms"], s["n"]) == (2.0, 3)
    assert set(s) == {"p50_ms", "p95_ms", "p99_ms", "mean_ms", "n"}
    floor = {"embed_query": {"p50_ms": 5.0}, "dense_sql": {"p50_ms": 2.0}, "lexical_sql": {"p50_ms": 9.0}}
    assert floor_by_mode(floor) == {"dense": 7.0, "lexical": 9.0, "hybrid": 9.0}
    v = unit_vectors(4, 8, np.random.default_rng(0))
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0)
    chunks = synthetic_chunks(["t1", "t2"], 0, 3, page_no=7)
    assert [c.text for c in chunks] == ["t1", "t2", "t1"]
    assert len({c.content_hash for c in chunks}) == 3


async def test_bench_report_has_every_key(clean: Runtime, docs_url: str) -> None:
    """The whole bench on a tiny corpus yields a complete report and a table."""
    report = await run_bench(clean, PYTHON_DOCS, docs_url, PAGES, QUERIES, synthetic=200, single=2, rounds=1)
    assert set(report) >= REPORT_KEYS
    assert report["pages"] == 3
    assert report["index_first"]["indexed"] == 3
    assert report["reindex_unchanged"]["unchanged"] == 3
    assert report["synthetic_insert"]["chunks"] == 200
    assert report["synthetic_search"]["chunks"] >= report["search"]["chunks"] + 200
    for part in ("search", "synthetic_search"):
        assert set(report[part]["latency"]) == {"dense", "lexical", "hybrid"}
        assert set(report[part]["floor"]) == {"embed_query", "dense_sql", "lexical_sql"}
    assert report["single_page_index"]["n"] == 2
    table = markdown_table(report)
    assert "end-to-end index" in table and "| target | measured | met |" in table
    assert "| whole-site crawl peak RSS ≤ 1024 MiB (CLI + extraction workers) | not measured (--no-site) |" in table
    await clean.store.truncate_all()
