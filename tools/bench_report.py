"""The bench report as a Markdown table: figures and ratios, search latency per index size, the whole site, targets."""

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


def site_rows(r: dict[str, Any]) -> list[str]:
    """Rows of the whole-site CLI crawl (first run, unchanged re-run); none when it was not run."""
    site = r.get("site")
    if not site:
        return []
    if "error" in site:
        return [f"| whole site (CLI) | not measured | {site['error']} |"]
    env = f", env {' '.join(site['env'])}" if site.get("env") else ""
    rows = [
        f"| whole site (CLI) | {site['start_url']} | max_pages {site['max_pages']}, max_depth {site['max_depth']}, "
        f"fresh DATA_DIR{env} |"
    ]
    for name, x in site["runs"].items():
        rows.append(
            f"| whole site: {name} | {x['pages_per_s']:.2f} pages/s, {x['chunks_per_s']:.1f} chunks/s | pages "
            f"{x['pages']} (indexed {x['indexed']} / unchanged {x['unchanged']} / failed {x['failed']}), "
            f"{x['chunks']} chunks, wall {x['wall_s']:.1f} s (crawl job {x['crawl_s']:.1f} s); peak RSS "
            f"{x['peak_rss_mb']:.0f} MiB (CLI + extraction workers), PostgreSQL PSS {x['postgres_peak_pss_mb']:.0f} "
            f"MiB; load 1m {x['load_avg_1m_before']} → {x['load_avg_1m_after']} |"
        )
    return rows


MIN_TARGET_CHUNKS = 20_000


def _largest_search(r: dict[str, Any]) -> dict[str, Any] | None:
    """The search section measured at the largest index size."""
    parts = [r["search"]] if r.get("search") else []
    parts += r.get("synthetic_steps") or ([r["synthetic_search"]] if r.get("synthetic_search") else [])
    return max(parts, key=lambda p: p["chunks"], default=None)


def targets(r: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Each acceptance target: its name, the measured value, met (True / False) or None when not measured."""
    crawl = r.get("crawl_extract") or {}
    x, why = crawl.get("ratio"), crawl.get("note") or "no crawl + extract comparison"
    out = [("crawl + extract ≥ ×2 crawl4ai (pages/s)", f"×{x:.2f}" if x is not None else why, _at_least(x, 2))]
    x = r.get("pipeline_efficiency")
    value = f"×{x:.2f}" if x is not None else "not measured"
    out.append(("pipeline efficiency ≥ ×0.9 (end-to-end ÷ embedder-only chunks/s)", value, _at_least(x, 0.9)))
    x = r.get("index_chunks_per_s")
    out.append(
        ("end-to-end index ≥ 40 chunks/s", f"{x:.1f} chunks/s" if x is not None else "not measured", _at_least(x, 40))
    )
    out += _search_targets(_largest_search(r))
    s = r.get("single_page_index") or {}
    value = f"p95 {s['p95_ms']:.0f} ms (mean {s['mean_chunks']} chunks/page, n={s['n']})" if s.get("n") else ""
    out.append(("single-page index p95 < 1 s", value or "not measured", s["p95_ms"] < 1000 if value else None))
    out.append(_site_target(r.get("site")))
    return out


def _search_targets(part: dict[str, Any] | None) -> list[tuple[str, str, bool | None]]:
    """Hybrid p95 < 50 ms and p95 ≤ 2 × its floor, at the largest index (not measured under 20000 chunks)."""
    names = ("hybrid search p95 < 50 ms @ ≥ 20000 chunks", "hybrid search p95 ≤ 2 × floor @ the largest index")
    if part is None or "hybrid" not in part["latency"]:
        return [(name, "not measured", None) for name in names]
    p95, floor, n = part["latency"]["hybrid"]["p95_ms"], part["floor_p50_ms"]["hybrid"], part["chunks"]
    big = n >= MIN_TARGET_CHUNKS
    size = "" if big else f"; the largest index holds {n} < {MIN_TARGET_CHUNKS} chunks"
    times = p95 / max(floor, 1e-9)
    return [
        (names[0], f"p95 {p95:.1f} ms @ {n} chunks{size}", p95 < 50 if big else None),
        (
            names[1],
            f"p95 {p95:.1f} ms vs 2 × floor p50 {floor:.1f} ms (×{times:.2f}; no p95 floor is measured){size}",
            p95 <= 2 * floor if big else None,
        ),
    ]


def _at_least(value: float | None, floor: float) -> bool | None:
    return None if value is None else value >= floor


def _site_target(site: dict[str, Any] | None) -> tuple[str, str, bool | None]:
    """Whole-site peak RSS (CLI + extraction workers, the larger of its runs) ≤ 1024 MiB."""
    name = "whole-site crawl peak RSS ≤ 1024 MiB (CLI + extraction workers)"
    if not site or not site.get("runs"):
        return name, (site or {}).get("error", "not measured (--no-site)"), None
    rss = max(x["peak_rss_mb"] for x in site["runs"].values())
    pg = max(x["postgres_peak_pss_mb"] for x in site["runs"].values())
    pages = max(x["pages"] for x in site["runs"].values())
    return name, f"{rss:.0f} MiB over {pages} pages; PostgreSQL PSS {pg:.0f} MiB apart", rss <= 1024


def target_rows(r: dict[str, Any]) -> list[str]:
    """The targets block: a Markdown table of target, measured value, met / not met / not measured."""
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    rows = ["| target | measured | met |", "|---|---|---|"]
    return rows + [f"| {name} | {value} | {verdict[met]} |" for name, value, met in targets(r)]


def crawl_table(r: dict[str, Any]) -> str:
    """The table of a --crawl-only run: the comparison, the whole site when run, and the targets."""
    rows = ["| measure | value | ratio / note |", "|---|---:|---|", *crawl_extract_row(r), *site_rows(r)]
    return "\n".join([*rows, "", "targets:", "", *target_rows(r)])


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
        *site_rows(r),
    ]
    return "\n".join([*rows, "", "targets:", "", *target_rows(r)])
