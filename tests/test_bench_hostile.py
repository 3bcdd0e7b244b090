"""tools/bench_hostile.py at a tiny size against a real server process: every figure is reported, nothing timed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_web_ingest.runtime import Runtime
from tools.bench_hostile import Options, markdown_table, page_outcomes, parse_args, run_bench, summarise_reasons
from tools.hostile_site import EVIL_PATH, FETCH_LIMIT, SCRIPT_HREFS, hostile_pages, site_page

REPORT_KEYS = {
    "scale",
    "site_bytes",
    "crawl_args",
    "cpu_count",
    "load_avg_start",
    "load_avg_end",
    "health_ms",
    "search_ms",
    "idle",
    "flood",
    "crawl",
    "hostile_pages",
    "site_requests",
    "script_urls_requested",
    "server_rss_mb",
    "loop_lag_ms",
}
LATENCY_KEYS = {"p50", "p95", "p99", "max", "mean", "samples", "errors", "over_100ms"}


def test_the_site_is_as_hostile_as_announced() -> None:
    full = hostile_pages(1.0)
    assert full["/deep-divs"].count("<div>") == 100_000
    assert full["/deep-lists"].count("<ul><li>") == 50_000
    big = full["/many-links"]
    assert big.count("<a ") >= 490_000 and 9_000_000 < len(big.encode()) < FETCH_LIMIT  # fetched, then parsed
    small = hostile_pages(0.05)
    assert set(small) == set(full) and small["/deep-divs"].count("<div>") == 5_000
    start = site_page("/", small, ordinary=3)
    assert start is not None and all(f'href="{p}"' in start for p in small) and 'href="/page/2"' in start
    assert all(f'href="{h}"' in start for h in SCRIPT_HREFS)
    assert EVIL_PATH in (site_page("/page/1", small, 3) or "")
    assert site_page("/robots.txt", small, 3) is None


def test_helpers() -> None:
    site = "http://127.0.0.1:9"
    states = {
        f"{site}/a": ("skipped", f"The page at {site}/a would make 2233 chunks, more than MAX_CHUNKS_PER_PAGE=2000"),
        f"{site}/b": ("failed", f"HTTP 404 for {site}/b"),
        f"{site}/c": ("failed", f"HTTP 404 for {site}/c"),
        f"{site}/{EVIL_PATH[1:-1]}%21": ("indexed", None),
    }
    assert summarise_reasons(states) == {
        "failed: HTTP N for <url>": 2,
        "skipped: The page at <url> would make N chunks, more than MAX_CHUNKS_PER_PAGE=N": 1,
    }
    outcomes = page_outcomes(site, ["/b", EVIL_PATH, "/d"], states)
    assert outcomes["/b"] == {"state": "failed", "reason": f"HTTP 404 for {site}/b"}
    assert outcomes[EVIL_PATH] == {"state": "indexed", "reason": None}  # matched through its percent-encoding
    assert outcomes["/d"] == {"state": "not reached", "reason": None}
    opts, out = parse_args(["--scale", "0.05", "--no-fresh", "--out", "r.json", "--flood", "7"])
    assert (opts.scale, opts.fresh, opts.flood, out) == (0.05, False, 7, Path("r.json"))


@pytest.mark.timeout(300)
async def test_report_has_every_figure(clean: Runtime, data_dir: Path) -> None:
    """A whole run at 5 % size, on the session's embedded database (fresh=False: its DATA_DIR is shared)."""
    opts = Options(scale=0.05, max_pages=8, ordinary=2, baseline=1.0, flood=20, data_dir=data_dir, fresh=False)
    report = await run_bench(opts)
    assert set(report) >= REPORT_KEYS
    for probe in (report["health_ms"], report["search_ms"], report["idle"]["health_ms"]):
        assert set(probe) == LATENCY_KEYS and probe["samples"] > 0
    assert report["crawl"]["state"] in {"done", "partial", "failed", "cancelled"}
    assert report["crawl"]["counts"]["fetched"] > 0 and isinstance(report["crawl"]["reasons"], dict)
    pages = report["hostile_pages"]
    assert set(pages) == set(hostile_pages(0.05)) and all(p["state"] != "not reached" for p in pages.values())
    assert sum(report["flood"]["statuses"].values()) == 20
    assert report["server_rss_mb"]["server"] > 0 and len(report["load_avg_start"]) == 3
    assert report["loop_lag_ms"] is not None
    table = markdown_table(report)
    assert "/health during the crawl" in table and "server peak RSS" in table
    await clean.store.truncate_all()
