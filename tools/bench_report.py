"""The bench report as a Markdown table: figures and ratios, search latency per index size."""

from __future__ import annotations

import os
from typing import Any


def _search_rows(label: str, part: dict[str, Any]) -> list[str]:
    """Table rows of one search-latency section."""
    rows = []
    for mode, s in part["latency"].items():
        floor = part["floor_p50_ms"][mode]
        rows.append(
            f"| search {mode} @ {part['chunks']} chunks ({label}) | p50 {s['p50_ms']:.1f} / p95 {s['p95_ms']:.1f} / "
            f"p99 {s['p99_ms']:.1f} ms | floor p50 {floor:.1f} ms (×{s['p50_ms'] / max(floor, 1e-9):.2f}) |"
        )
    f = part["floor"]
    rows.append(
        f"| floor legs @ {part['chunks']} chunks | embed_query p50 {f['embed_query']['p50_ms']:.1f} ms, "
        f"dense SQL p50 {f['dense_sql']['p50_ms']:.1f} ms, lexical SQL p50 {f['lexical_sql']['p50_ms']:.1f} ms | |"
    )
    return rows


def _times(ratio: float | None) -> str:
    return "×?" if ratio is None else f"×{ratio:.2f}"


def _per_cpu(m: dict[str, Any]) -> str:
    return f", {m['pages_per_cpu_s']:.2f} pages per CPU-s" if m.get("pages_per_cpu_s") else ""


def crawl_extract_row(r: dict[str, Any]) -> list[str]:
    """The row comparing our crawl + extract with crawl4ai's (fetch + extract alone in a report without it)."""
    c = r.get("crawl_extract")
    if not c:
        return [f"| fetch + extract | {r['fetch_extract_pages_per_s']:.1f} pages/s | |"]
    o, t = c["ours"], c.get("crawl4ai")
    workers = o.get("workers_peak_rss_mb")
    ours = (
        f"ours {o['pages_per_s']:.2f} pages/s{_per_cpu(o)} ({o['ok']}/{o['pages']} pages, {o['code_blocks']} code "
        f"blocks, {o['workers']} extraction workers peak {workers if workers is not None else '?'} MiB together"
        f"{'' if o.get('failed', 0) == 0 else ', ' + str(o['failed']) + ' failed'})"
    )
    if not t:
        return [f"| crawl + extract vs crawl4ai | {o['pages_per_s']:.2f} pages/s | {ours}; crawl4ai: {c.get('note')} |"]
    return [
        f"| crawl + extract vs crawl4ai | {_times(c['ratio'])} ({o['pages_per_s']:.2f} vs {t['pages_per_s']:.2f} "
        f"pages/s) | {ours}; crawl4ai {t.get('crawl4ai_version', '')} {t['pages_per_s']:.2f} pages/s{_per_cpu(t)} "
        f"({t['ok']}/{t['pages']} pages, {t['code_blocks']} code blocks, peak RSS {t['peak_rss_mb']:.0f} MiB, one "
        f"process); concurrency {o['concurrency']}, load 1m {c.get('load_avg_1m_before')} → "
        f"{c.get('load_avg_1m_after')} |"
    ]


def markdown_table(r: dict[str, Any]) -> str:
    """The bench report as a Markdown table of figures and ratios."""
    e, s = r["embedder_only"], r["single_page_index"]
    rows = [
        "| measure | value | ratio / note |",
        "|---|---:|---|",
        f"| pages / chunks | {r['pages']} / {r['chunks']} | {r['embedding_model']}"
        f"{' (' + r['backend'] + ')' if r.get('backend') else ''} |",
        *crawl_extract_row(r),
        f"| extract (pure) | {r['extract_pages_per_s']:.1f} pages/s | one process, no fetch |",
        f"| embedder only | {e['chunks_per_s']:.1f} chunks/s | {e['chunks']} chunks in {e['seconds']} s; "
        f"{e['chunks_per_cpu_s']:.1f} chunks per process CPU-s |",
        *(
            [f"| SPLADE only | {r['splade_only']['chunks_per_s']:.1f} chunks/s | {r['splade_only']['chunks']} chunks |"]
            if r.get("splade_only")
            else []
        ),
        f"| end-to-end index | {r['index_chunks_per_s']:.1f} chunks/s | efficiency ×{r['pipeline_efficiency']:.2f} "
        f"of embedder-only ({r['index_first']['seconds']} s; {r['index_chunks_per_cpu_s']:.1f} chunks per process "
        "CPU-s) |",
        f"| unchanged re-index | {r['reindex_unchanged']['seconds']} s | ×{r['reindex_ratio']:.3f} of first index |",
        f"| single-page index | p50 {s['p50_ms']:.0f} / p95 {s['p95_ms']:.0f} ms | {s['mean_chunks']} chunks/page, "
        f"n={s['n']} |",
        *_search_rows("docs", r["search"]),
        f"| synthetic insert | {r['synthetic_insert']['chunks_per_s']:.0f} chunks/s | "
        f"{r['synthetic_insert']['chunks']} chunks in {r['synthetic_insert']['seconds']} s |",
        *(row for part in r.get("synthetic_steps", [r["synthetic_search"]]) for row in _search_rows("synthetic", part)),
        f"| peak RSS | {r['peak_rss_mb']:.0f} MiB | bench process only (PostgreSQL runs separately) |",
        f"| load average (1 min) at the end | {r['load_avg_1m']} | on {os.cpu_count()} cores |",
    ]
    return "\n".join(rows)
