"""The bench tools' helpers and tables (tools/bench.py, bench_crawl.py, bench_report.py, bench_crawl4ai.py,
bench_site.py), the acceptance targets block, and
tools/bench_crawl4ai.py run for real in crawl4ai's venv on pages served from 127.0.0.1. No timing assertions."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest

from tools.bench import parse_args, site_wanted
from tools.bench_crawl import (
    CRAWL4AI_PYTHON,
    comparison,
    cpu_seconds,
    crawl_extract_crawl4ai,
    ratio,
    sampling_workers,
    warm_extraction,
    worker_rss_mb,
)
from tools.bench_crawl4ai import count_code_blocks, rate, read_urls
from tools.bench_report import crawl_extract_row, crawl_table, site_rows, target_rows, targets
from tools.bench_site import (
    cli_command,
    cli_env,
    is_postgres,
    markdown_table,
    parse_env,
    parse_status,
    postgres_mb,
    run_figures,
    served_elsewhere,
    site_command,
    site_result,
    tree_rss_mb,
)

from .conftest import PYTHON_DOCS

PAGES = ["library/json.html", "library/copy.html", "library/colorsys.html"]
FENCED = "intro\n```python\nx = 1\n```\ntext\n```\n```\n~~~\n```\nnot a fence\n~~~\n```\nunclosed\n"


def test_count_code_blocks() -> None:
    """Pairs of fence lines; a ``` line inside a ~~~ block is content; an unclosed fence is not counted."""
    assert count_code_blocks(FENCED) == 3
    assert count_code_blocks("no code here") == 0
    assert count_code_blocks("````\n```\nstill inside\n````\n") == 1  # a shorter fence does not close a longer one
    assert count_code_blocks("  ```\n  indented\n  ```") == 1


def test_rates_and_ratio(tmp_path: Path) -> None:
    """pages/s and ours ÷ theirs, with the zero cases; the URL file reader skips blank lines."""
    assert rate(10, 4.0) == 2.5
    assert rate(3, 0.0) == 0.0
    assert ratio(6.0, 4.0) == 1.5
    assert ratio(1.0, 0.0) is None
    urls = tmp_path / "urls.txt"
    urls.write_text("http://a/1\n\n  http://a/2  \n")
    assert read_urls(urls) == ["http://a/1", "http://a/2"]


def _ours(pages_per_s: float) -> dict[str, object]:
    return {
        "pages": 3, "ok": 3, "failed": 0, "seconds": round(3 / pages_per_s, 2), "pages_per_s": pages_per_s,
        "code_blocks": count_code_blocks(FENCED), "concurrency": 8, "workers": 2, "workers_peak_rss_mb": 80.0,
        "pages_per_cpu_s": 1.5,
    }  # fmt: skip


def test_crawl_extract_row() -> None:
    """The comparison row shows both rates, the ratio and code blocks; without crawl4ai it says why."""
    theirs = {"pages": 3, "ok": 3, "pages_per_s": 2.0, "peak_rss_mb": 512.0, "code_blocks": 2, "crawl4ai_version": "x"}
    both = comparison(_ours(3.0), theirs)
    assert both["ratio"] == 1.5 and both["note"] is None
    row = crawl_extract_row({"crawl_extract": both})[0]
    assert row.startswith("| crawl + extract vs crawl4ai | ×1.50 (3.00 vs 2.00 pages/s)")
    assert "3 code blocks" in row and "2 code blocks" in row and "512 MiB" in row and "1.50 pages per CPU-s" in row
    alone = comparison(_ours(3.0), None, "crawl4ai venv missing")
    assert alone["ratio"] is None
    assert "crawl4ai venv missing" in crawl_extract_row({"crawl_extract": alone})[0]
    assert crawl_extract_row({"fetch_extract_pages_per_s": 4.0})[0].startswith("| fetch + extract | 4.0 pages/s")


def test_site_helpers() -> None:
    """Figures from a CLI status, the table, --env parsing, the command and its environment."""
    status = {
        "state": "done",
        "elapsed_s": 10.0,
        "pages_per_s": 2.0,
        "failed": [],
        "counts": {"discovered": 21, "indexed": 18, "unchanged": 2, "failed": 1, "skipped": 0, "chunks": 400},
    }
    stdout = "noise\n" + json.dumps(status, indent=2) + "\n"
    figures = run_figures(parse_status(stdout), wall_s=16.0)
    assert (figures["pages"], figures["pages_per_s"], figures["chunks_per_s"]) == (20, 1.25, 25.0)
    assert figures["crawl_chunks_per_s"] == 40.0
    figures.update(peak_rss_mb=900.0, postgres_peak_pss_mb=60.0, load_avg_1m_before=0.5, load_avg_1m_after=1.9)
    report = {"start_url": "http://127.0.0.1:1/index.html", "max_pages": 1000, "max_depth": 20, "cores": 2,
              "env": ["EMBEDDING_BACKEND=onnx"], "runs": {"first": figures}}  # fmt: skip
    table = markdown_table(report)
    assert "| first | 20 (18 / 2 / 1) | 400 | 16.0 | 1.25 | 25.0 | 10.0 | 900 | 60 | 0.5 → 1.9 |" in table
    assert "EMBEDDING_BACKEND=onnx" in table
    assert parse_env(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}
    with pytest.raises(SystemExit):
        parse_env(["novalue"])
    with pytest.raises(ValueError):
        parse_status("no json")
    cmd = cli_command("http://127.0.0.1:1/index.html", 1000, 20)
    assert cmd[-9:] == ["index", "http://127.0.0.1:1/index.html", "--max-depth", "20", "--max-pages", "1000",
                        "--scope", "path", "--json"]  # fmt: skip
    env = cli_env(Path("x"), {"ALLOW_PRIVATE_NETWORKS": "false", "K": "v"})
    assert env["DATA_DIR"] == str(Path("x").resolve()) and env["K"] == "v"
    assert env["ALLOW_PRIVATE_NETWORKS"] == "false"  # --env wins
    assert is_postgres(["/usr/lib/postgresql/16/bin/postgres", "-D", "x"])
    assert is_postgres([], "postgres")
    assert not is_postgres(["python", "-m", "mcp_web_ingest.ingest.extract_worker"], "python")


def _site_run(indexed: int, unchanged: int, rss: float) -> dict[str, object]:
    return {
        "pages": indexed + unchanged, "indexed": indexed, "unchanged": unchanged, "failed": 0, "chunks": 9000,
        "wall_s": 300.0, "crawl_s": 280.0, "pages_per_s": 1.77, "chunks_per_s": 30.0, "peak_rss_mb": rss,
        "postgres_peak_pss_mb": 150.0, "load_avg_1m_before": 0.1, "load_avg_1m_after": 1.9,
    }  # fmt: skip


def _site(rss_first: float, rss_again: float) -> dict[str, object]:
    runs = {"first": _site_run(530, 0, rss_first), "unchanged re-run": _site_run(0, 530, rss_again)}
    return {"start_url": "http://127.0.0.1:8780/index.html", "max_pages": 1000, "max_depth": 20, "env": [],
            "cores": 2, "runs": runs}  # fmt: skip


def _search(chunks: int, p95: float, floor: float) -> dict[str, object]:
    latency = {"p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95, "mean_ms": p95 / 2, "n": 10}
    return {"chunks": chunks, "latency": {"hybrid": latency}, "floor_p50_ms": {"hybrid": floor}}


def _report(good: bool) -> dict[str, object]:
    """A report whose every target is met (good) or missed."""
    crawl = comparison(_ours(5.0 if good else 3.0), {"pages": 3, "ok": 3, "pages_per_s": 2.0})
    return {
        "crawl_extract": crawl,
        "pipeline_efficiency": 0.93 if good else 0.5,
        "index_chunks_per_s": 45.0 if good else 20.0,
        "search": _search(800, 9.0, 5.0),
        "synthetic_steps": [_search(20800, 30.0, 20.0), _search(50800, 40.0 if good else 60.0, 25.0)],
        "single_page_index": {"p95_ms": 700.0 if good else 1400.0, "mean_chunks": 31.5, "n": 10},
        "site": _site(800.0, 600.0 if good else 1100.0),
    }


def test_targets_met_and_not_met() -> None:
    """Each target from the report: met, not met, or not measured when its figure is missing or too small."""
    met = targets(_report(True))
    assert [m for _, _, m in met] == [True] * 7
    values = [v for _, v, _ in met]
    assert values[0] == "×2.50" and values[1] == "×0.93" and values[2] == "45.0 chunks/s"
    assert values[3] == "p95 40.0 ms @ 50800 chunks"  # the largest index, not the first synthetic step
    assert "vs 2 × floor p50 25.0 ms (×1.60; no p95 floor is measured)" in values[4]
    assert "mean 31.5 chunks/page" in values[5]
    assert values[6].startswith("800 MiB over 530 pages") and "PostgreSQL PSS 150 MiB" in values[6]
    missed = targets(_report(False))
    assert [m for _, _, m in missed] == [False] * 7
    assert missed[6][1].startswith("1100 MiB")  # the larger of the two runs
    small = {**_report(True), "synthetic_steps": [_search(1100, 10.0, 8.0)]}
    small_targets = targets(small)
    assert small_targets[3][2] is None and "1100 < 20000 chunks" in small_targets[3][1]
    assert small_targets[4][2] is None
    none = targets({"crawl_extract": comparison(_ours(3.0), None, "crawl4ai venv missing")})
    assert none[0] == ("crawl + extract ≥ ×2 crawl4ai (pages/s)", "crawl4ai venv missing", None)
    assert all(m is None for _, _, m in none)
    assert none[6][1] == "not measured (--no-site)"
    rows = target_rows(_report(False))
    assert rows[:2] == ["| target | measured | met |", "|---|---|---|"]
    assert len(rows) == 9 and all(row.endswith("| **not met** |") for row in rows[2:])
    assert target_rows(_report(True))[2].endswith("| ×2.50 | met |")
    assert target_rows({})[-1].endswith("| not measured |")


def test_site_rows_and_subprocess_helpers(tmp_path: Path) -> None:
    """The whole-site rows of the bench table, the bench_site command line for tools/bench.py, its result."""
    rows = site_rows({"site": _site(812.4, 640.0)})
    assert len(rows) == 3 and "max_pages 1000" in rows[0]
    assert rows[1].startswith("| whole site: first | 1.77 pages/s, 30.0 chunks/s | pages 530 (indexed 530 / ")
    assert "peak RSS 812 MiB (CLI + extraction workers), PostgreSQL PSS 150 MiB; load 1m 0.1 → 1.9" in rows[1]
    assert "unchanged 530" in rows[2]
    assert site_rows({}) == []
    assert site_rows({"site": {"error": "boom"}}) == ["| whole site (CLI) | not measured | boom |"]
    table = crawl_table({"crawl_extract": comparison(_ours(3.0), None, "skipped"), "site": _site(900.0, 700.0)})
    assert "| whole site: unchanged re-run |" in table and "| 900 MiB over 530 pages" in table
    stale = tmp_path / "site-report.json"
    stale.write_text("{}")
    cmd, out = site_command(Path("docs"), tmp_path / "site", 50, ["EMBEDDING_BACKEND=onnx"])
    assert out == stale and not stale.exists()  # an old report is not read as this run's
    assert cmd[cmd.index("--data-dir") + 1] == str(tmp_path / "site")
    assert cmd[cmd.index("--docs-dir") + 1] == str(Path("docs").resolve())
    assert cmd[-4:] == ["--out", str(out), "--env", "EMBEDDING_BACKEND=onnx"] and "50" in cmd
    assert "exited 1" in site_result(1, cmd, out)["error"]
    out.write_text(json.dumps({"runs": {}}))
    assert site_result(0, cmd, out) == {"runs": {}}


def test_site_default() -> None:
    """The whole-site crawl runs in a full bench, not in a --pages or --crawl-only dev run, unless asked."""
    assert site_wanted(parse_args([]))
    assert not site_wanted(parse_args(["--pages", "10"]))
    assert not site_wanted(parse_args(["--crawl-only"]))
    assert site_wanted(parse_args(["--pages", "10", "--site"]))
    assert not site_wanted(parse_args(["--no-site"]))


async def test_memory_sampling(tmp_path: Path) -> None:
    """The extraction workers are found and measured; this process's tree has an RSS; no postgres serves tmp."""
    await warm_extraction(5.0)
    cpu = cpu_seconds()
    async with sampling_workers(interval_s=0.05) as peaks:
        assert worker_rss_mb()
        await warm_extraction(5.0)
        await asyncio.sleep(0.15)
    assert peaks["sum"] > 0 and peaks["one"] > 0
    assert cpu_seconds() > cpu
    assert tree_rss_mb(os.getpid()) > 0
    assert tree_rss_mb(2**22 + 12345) == 0.0  # no such process
    assert postgres_mb(tmp_path) == 0.0


async def test_crawl4ai_missing(tmp_path: Path) -> None:
    """Without crawl4ai's venv the comparison is skipped with a reason, not an error."""
    theirs, note = await crawl_extract_crawl4ai(["http://127.0.0.1:9/"], 2, tmp_path / "no-python")
    assert theirs is None and note is not None and "missing" in note


@pytest.mark.skipif(not CRAWL4AI_PYTHON.exists(), reason=f"{CRAWL4AI_PYTHON} is missing (make crawl4ai-runner)")
@pytest.mark.skipif(not PYTHON_DOCS.is_dir(), reason=f"{PYTHON_DOCS} is missing (apt-get install python3.11-doc)")
async def test_crawl4ai_script_on_served_pages() -> None:
    """tools/bench_crawl4ai.py in crawl4ai's venv crawls pages from a server in another process (loopback only) and
    keeps their code blocks: one fenced block per <pre> of each page."""
    pre = sum(len(re.findall(r"<pre[\s>]", (PYTHON_DOCS / p).read_text(errors="replace"))) for p in PAGES)
    async with served_elsewhere(PYTHON_DOCS) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        theirs, note = await crawl_extract_crawl4ai([f"{base_url}/{p}" for p in PAGES], 2, timeout_s=120)
    assert note is None and theirs is not None
    assert (theirs["pages"], theirs["ok"], theirs["concurrency"]) == (3, 3, 2)
    assert theirs["pages_per_s"] > 0 and theirs["cpu_s"] > 0 and theirs["peak_rss_mb"] > 0
    assert theirs["code_blocks"] == pre > 0
