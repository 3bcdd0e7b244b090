"""The bench tools' helpers and tables (tools/bench.py, bench_report.py, bench_crawl4ai.py, bench_site.py), and
tools/bench_crawl4ai.py run for real in crawl4ai's venv on pages served from 127.0.0.1. No timing assertions."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest

from tools.bench import (
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
from tools.bench_report import crawl_extract_row
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
