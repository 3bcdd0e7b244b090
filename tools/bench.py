"""Performance bench: extraction, embedding, end-to-end indexing, re-indexing, search latency and memory.

Usage: python tools/bench.py [--docs-dir DIR] [--pages N] [--synthetic N] [--single N] [--data-dir .data/bench/pipeline]
                             [--backend torch|onnx|onnx-int8] [--crawl-concurrency 8] [--no-crawl4ai] [--crawl-only]
                             [--site | --no-site] [--site-data-dir .data/bench/site] [--out bench.json]

Runs on the local Python docs served on 127.0.0.1 against a fresh index (the DATA_DIR's pages and chunks are
deleted first). First, on an idle machine, crawl + extract of the pages by our crawl path (the runtime's fetcher, then
the extraction worker pool, as the indexer does) vs crawl4ai's HTTP crawler with its markdown generator
(tools/bench_crawl4ai.py in .tools/crawl4ai-venv), same URLs and concurrency: pages/s of each, ours ÷ theirs, fenced
code blocks kept and RSS (tools/bench_crawl.py). Then: extract pages/s (pure, one process), embedder-only chunks/s on
the exact chunk texts vs end-to-end indexing chunks/s (pipeline efficiency), unchanged re-index time ÷ first index
time, search p50/p95/p99 per mode beside the floor (query embedding + each leg's raw SQL), the same at a synthetic
size, single-page index p50/p95 and peak RSS. Last, with --site (the default unless --pages or --crawl-only is given)
and this process's runtime closed: tools/bench_site.py as a subprocess on its own fresh DATA_DIR (the CLI crawls the
whole docs site, then re-crawls it unchanged). The table ends with each acceptance target, measured value and verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_web_ingest.errors import WebIngestError
from mcp_web_ingest.ingest.extract import extract_page
from mcp_web_ingest.models import Chunk, ExtractedPage, sha256_hex
from mcp_web_ingest.search.request import SearchRequest
from mcp_web_ingest.storage.records import PageRecord, SearchFilter
from tools.bench_crawl import CRAWL4AI_PYTHON, current_rss_mb, idle_comparison, peak_rss_mb
from tools.bench_report import crawl_table, markdown_table
from tools.bench_site import DEFAULT_DATA_DIR as SITE_DATA_DIR
from tools.bench_site import served_elsewhere, site_in_subprocess
from tools.eval import (
    DEFAULT_DOCS,
    DEFAULT_MODES,
    DEFAULT_QUESTIONS,
    choose_pages,
    index_pages,
    list_pages,
    load_questions,
    open_runtime,
    page_url,
    percentile,
    prepare_environment,
    serve_dir,
)

SYNTHETIC_COLLECTION = "bench-synthetic"
SYNTHETIC_PAGE_CHUNKS = 100


def latency_summary(ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 and mean of a list of millisecond timings."""
    return {
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "mean_ms": round(sum(ms) / len(ms), 2) if ms else 0.0,
        "n": len(ms),
    }


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    """Await fn() and return its result with the elapsed milliseconds."""
    started = time.perf_counter()
    result = await fn()
    return result, (time.perf_counter() - started) * 1000


# --- extraction and embedding -----------------------------------------------------------------------------------


def read_pages(docs_dir: Path, pages: Sequence[str]) -> dict[str, str]:
    """HTML of each page by docs-relative path."""
    return {p: (docs_dir / p).read_text(encoding="utf-8", errors="replace") for p in pages}


def extract_all(html: dict[str, str], base_url: str) -> tuple[dict[str, ExtractedPage], float]:
    """Extract every page (pure CPU, no fetch); returns the pages and pages/s."""
    started = time.perf_counter()
    out = {}
    for rel, text in html.items():
        try:
            out[rel] = extract_page(text, page_url(base_url, rel))
        except WebIngestError:
            continue
    return out, len(html) / max(time.perf_counter() - started, 1e-9)


async def embed_rate(runtime: Any, chunks: Sequence[Chunk]) -> dict[str, float]:
    """Embedder-only chunks/s on the exact texts the pipeline embeds (model warmed up first)."""
    await runtime.embedder.embed_documents(["warm-up"])
    texts = [c.embed_text for c in chunks]
    cpu = time.process_time()
    _, ms = await timed(lambda: runtime.embedder.embed_documents(texts))
    cpu = time.process_time() - cpu
    return {
        "chunks": len(texts),
        "seconds": round(ms / 1000, 2),
        "chunks_per_s": round(len(texts) / (ms / 1000), 2),
        "cpu_s": round(cpu, 2),
        "chunks_per_cpu_s": round(len(texts) / max(cpu, 1e-9), 2),
    }


async def sparse_rate(runtime: Any, chunks: Sequence[Chunk]) -> dict[str, float] | None:
    """SPLADE document texts/s on the exact texts the pipeline encodes, when SPLADE is configured."""
    if runtime.sparse is None:
        return None
    await runtime.sparse.encode(["warm-up"], "document")  # in-process: loads (exports once) the model
    _, ms = await timed(lambda: runtime.sparse.encode([c.embed_text for c in chunks], "document"))
    return {"chunks": len(chunks), "seconds": round(ms / 1000, 2), "chunks_per_s": round(len(chunks) / (ms / 1000), 2)}


# --- search latency ---------------------------------------------------------------------------------------------


async def search_latency(
    runtime: Any, queries: Sequence[str], modes: Sequence[str] = DEFAULT_MODES, rounds: int = 2
) -> dict[str, dict[str, float]]:
    """End-to-end pipeline.search latency per mode (k=10) over the queries, after one warm-up pass."""
    out = {}
    for mode in modes:
        requests = [SearchRequest.create(runtime.settings, q, k=10, mode=mode) for q in queries]
        for request in requests[:3]:
            await runtime.pipeline.search(request)
        samples = []
        for _ in range(rounds):
            for request in requests:
                samples.append((await timed(lambda r=request: runtime.pipeline.search(r)))[1])
        out[mode] = latency_summary(samples)
    return out


async def search_floor(runtime: Any, queries: Sequence[str], rounds: int = 2) -> dict[str, dict[str, float]]:
    """The floor under search: query embedding, and the raw SQL of each leg timed directly on the store."""
    n = runtime.settings.rerank_initial_k
    where = SearchFilter()
    vectors = [await runtime.embedder.embed_query(q) for q in queries]
    embed_ms, dense_ms, lexical_ms = [], [], []
    for _ in range(rounds):
        for q, v in zip(queries, vectors, strict=True):
            embed_ms.append((await timed(lambda q=q: runtime.embedder.embed_query(q)))[1])
            dense_ms.append((await timed(lambda v=v: runtime.store.index.dense_candidates(v, n, where)))[1])
            lexical_ms.append((await timed(lambda q=q: runtime.store.index.lexical_candidates(q, n, where)))[1])
    return {
        "embed_query": latency_summary(embed_ms),
        "dense_sql": latency_summary(dense_ms),
        "lexical_sql": latency_summary(lexical_ms),
    }


def floor_by_mode(floor: dict[str, dict[str, float]]) -> dict[str, float]:
    """p50 floor of each mode: dense = embed + dense SQL, lexical = lexical SQL, hybrid = the slower leg."""
    dense = floor["embed_query"]["p50_ms"] + floor["dense_sql"]["p50_ms"]
    lexical = floor["lexical_sql"]["p50_ms"]
    return {"dense": round(dense, 2), "lexical": round(lexical, 2), "hybrid": round(max(dense, lexical), 2)}


def search_part(chunks: int, latency: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """One search section of the report: index size, latency per mode, the floor legs and each mode's floor."""
    return {"chunks": chunks, "latency": latency, "floor": floor, "floor_p50_ms": floor_by_mode(floor)}


# --- synthetic size ---------------------------------------------------------------------------------------------


def unit_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """n random unit vectors (float32)."""
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def synthetic_chunks(texts: Sequence[str], start: int, count: int, page_no: int) -> list[Chunk]:
    """`count` chunks copying real chunk texts (cycled), each made unique by a page marker."""
    out = []
    for i in range(count):
        text = texts[(start + i) % len(texts)]
        path = (f"Synthetic page {page_no}",)
        out.append(Chunk(i, text, path, None, len(text.split()), sha256_hex(f"{page_no}:{i}:{text}")))
    return out


async def insert_synthetic(
    runtime: Any, texts: Sequence[str], n: int, seed: int = 0, first_page: int = 0
) -> dict[str, float]:
    """Store n synthetic chunks (random unit vectors, copies of real texts) on fake pages via replace_page."""
    rng = np.random.default_rng(seed + first_page)
    dim = runtime.embedder.dimension
    started = time.perf_counter()
    done, page_no = 0, first_page
    while done < n:
        count = min(SYNTHETIC_PAGE_CHUNKS, n - done)
        chunks = synthetic_chunks(texts, done, count, page_no)
        url = f"http://synthetic.invalid/page-{page_no}"
        record = PageRecord(url=url, title=f"Synthetic page {page_no}", content_hash=sha256_hex(url), pipeline="bench")
        await runtime.store.replace_page(SYNTHETIC_COLLECTION, record, chunks, list(unit_vectors(count, dim, rng)))
        done, page_no = done + count, page_no + 1
    seconds = time.perf_counter() - started
    pages = page_no - first_page
    return {"chunks": n, "pages": pages, "seconds": round(seconds, 2), "chunks_per_s": round(n / max(seconds, 1e-9), 1)}


# --- single-page indexing ---------------------------------------------------------------------------------------


async def single_page_latency(runtime: Any, urls: Sequence[str]) -> dict[str, float]:
    """Index each URL alone into a collection of its own (forces fetch, extract, chunk, embed, store)."""
    samples, chunks = [], []
    for i, url in enumerate(urls):
        outcome, ms = await timed(lambda i=i, url=url: runtime.pipeline.index_page(url, collection=f"bench-single-{i}"))
        samples.append(ms)
        chunks.append(outcome.chunk_count)
    summary = latency_summary(samples)
    summary["mean_chunks"] = round(sum(chunks) / len(chunks), 1) if chunks else 0.0
    return summary


# --- the whole bench --------------------------------------------------------------------------------------------


async def run_bench(
    runtime: Any,
    docs_dir: Path,
    base_url: str,
    pages: Sequence[str],
    queries: Sequence[str],
    synthetic: int | Sequence[int],
    single: int = 10,
    concurrency: int = 4,
    rounds: int = 2,
    crawl_concurrency: int = 8,
    crawl_base_url: str | None = None,
    crawl4ai_python: Path | None = CRAWL4AI_PYTHON,
) -> dict[str, Any]:
    """Every measurement, in an order where each one sees the index state it should; returns the report.

    The crawl + extract comparison runs first, once the models have loaded, on an otherwise idle machine; its pages
    are fetched from crawl_base_url (a server in another process, see amain), else from base_url.
    """
    await runtime.store.truncate_all()
    crawl_urls = [page_url(crawl_base_url or base_url, p) for p in pages]
    crawl = await idle_comparison(runtime, crawl_urls, crawl_concurrency, crawl4ai_python)
    urls = [page_url(base_url, p) for p in pages]
    extracted, extract_pps = await asyncio.to_thread(extract_all, read_pages(docs_dir, pages), base_url)
    chunks = [c for page in extracted.values() for c in runtime.pipeline.chunk(page)]
    embed = await embed_rate(runtime, chunks)
    splade = await sparse_rate(runtime, chunks[:500])
    cpu = time.process_time()
    first = await index_pages(runtime, urls, concurrency)
    first["cpu_s"] = round(time.process_time() - cpu, 2)
    again = await index_pages(runtime, urls, concurrency)
    e2e_cps = first["chunks"] / max(first["seconds"], 1e-9)
    counts = await runtime.store.catalog.counts()
    real_search = await search_latency(runtime, queries, rounds=rounds)
    real_floor = await search_floor(runtime, queries, rounds)
    single_stats = await single_page_latency(runtime, urls[: max(0, single)])
    # Search latency at each index size: synthetic chunks are added until the index holds each target in turn.
    steps: list[dict[str, Any]] = []
    inserted = {"chunks": 0, "pages": 0, "seconds": 0.0}
    texts = [c.text for c in chunks] or ["synthetic text"]
    for target in [synthetic] if isinstance(synthetic, int) else synthetic:
        missing = max(0, target - inserted["chunks"])
        part = await insert_synthetic(runtime, texts, missing, first_page=int(inserted["pages"]))
        inserted = {k: inserted[k] + part[k] for k in inserted}
        synth_counts = await runtime.store.catalog.counts()
        synth_search = await search_latency(runtime, queries, rounds=rounds)
        steps.append(search_part(synth_counts["chunks"], synth_search, await search_floor(runtime, queries, rounds)))
    synth = {**inserted, "seconds": round(inserted["seconds"], 2)}
    synth["chunks_per_s"] = round(synth["chunks"] / max(synth["seconds"], 1e-9), 1)
    return {
        "pages": len(pages),
        "chunks": len(chunks),
        "embedding_model": runtime.embedder.model_name,
        "extract_pages_per_s": round(extract_pps, 2),
        "fetch_extract_pages_per_s": crawl["ours"]["pages_per_s"],  # our real crawl path, = crawl_extract.ours
        "crawl_extract": crawl,
        "embedder_only": embed,
        "splade_only": splade,
        "index_first": {k: first[k] for k in ("indexed", "unchanged", "failed", "chunks", "seconds", "cpu_s")},
        "index_chunks_per_s": round(e2e_cps, 2),
        "index_chunks_per_cpu_s": round(first["chunks"] / max(first["cpu_s"], 1e-9), 2),
        "pipeline_efficiency": round(e2e_cps / max(embed["chunks_per_s"], 1e-9), 3),
        "reindex_unchanged": {k: again[k] for k in ("indexed", "unchanged", "failed", "seconds")},
        "reindex_ratio": round(again["seconds"] / max(first["seconds"], 1e-9), 4),
        "search": search_part(counts["chunks"], real_search, real_floor),
        "single_page_index": single_stats,
        "synthetic_insert": synth,
        "synthetic_search": steps[-1],
        "synthetic_steps": steps,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "peak_rss_mb": peak_rss_mb(),
        "rss_mb": current_rss_mb(),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs-dir", type=Path, default=DEFAULT_DOCS)
    p.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    p.add_argument("--pages", type=int, default=None, help="bench on N pages (eval-relevant pages + distractors)")
    p.add_argument(
        "--synthetic",
        default="20000,50000",
        type=lambda v: [int(x) for x in v.split(",")],
        help="synthetic chunks added for the large-index searches, in steps (comma-separated totals)",
    )
    p.add_argument("--single", type=int, default=10, help="pages timed one at a time")
    p.add_argument("--rounds", type=int, default=2, help="passes over the queries per search measurement")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument(
        "--crawl-concurrency", type=int, default=8, help="pages in flight in the crawl + extract vs crawl4ai comparison"
    )
    p.add_argument("--no-crawl4ai", action="store_true", help="measure our crawl + extract only")
    p.add_argument("--crawl-only", action="store_true", help="only the crawl + extract vs crawl4ai comparison")
    p.add_argument("--data-dir", type=Path, default=Path(".data/bench/pipeline"))
    p.add_argument(
        "--site",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="then the whole-site CLI crawl and unchanged re-run (tools/bench_site.py); default: on unless --pages "
        "or --crawl-only is given",
    )
    p.add_argument("--site-data-dir", type=Path, default=SITE_DATA_DIR, help="its DATA_DIR (wiped first)")
    p.add_argument("--site-max-pages", type=int, default=1000, help="the whole-site crawl's --max-pages")
    p.add_argument(
        "--backend", choices=("torch", "onnx", "onnx-int8"), default=None, help="default: EMBEDDING_BACKEND's"
    )
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    return p.parse_args(argv)


def site_wanted(args: argparse.Namespace) -> bool:
    """--site as given, else on for a full run (no --pages subset, not --crawl-only)."""
    return bool(args.site) if args.site is not None else args.pages is None and not args.crawl_only


def write_report(report: dict[str, Any], out: Path | None) -> None:
    """Write the JSON report when --out is given."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    """Run the bench as the options say, then the whole-site figure, and print the table."""
    questions = load_questions(args.questions)
    pages = choose_pages(list_pages(args.docs_dir), questions, args.pages)
    # The comparison's pages come from a server in a process of its own, so neither crawler pays for serving them.
    async with (
        serve_dir(args.docs_dir) as base_url,
        served_elsewhere(args.docs_dir) as crawl_base_url,
        open_runtime(args.data_dir, args.backend) as rt,
    ):
        crawl4ai = None if args.no_crawl4ai else CRAWL4AI_PYTHON
        if args.crawl_only:
            urls = [page_url(crawl_base_url, p) for p in pages]
            crawl = await idle_comparison(rt, urls, args.crawl_concurrency, crawl4ai)
            report: dict[str, Any] = {"pages": len(pages), "crawl_extract": crawl, "cores": os.cpu_count()}
        else:
            report = await run_bench(
                rt, args.docs_dir, base_url, pages, [q.q for q in questions], args.synthetic, args.single,
                args.concurrency, args.rounds, args.crawl_concurrency, crawl_base_url, crawl4ai,
            )  # fmt: skip
        report["backend"] = rt.settings.embedding_backend
    if site_wanted(args):
        write_report(report, args.out)  # the figures so far, should the whole-site crawl not finish
        # Our runtime (models, embedded PostgreSQL) and file servers are closed: the CLI has the machine to itself.
        print(f"bench done; whole-site crawl next (DATA_DIR {args.site_data_dir})", file=sys.stderr)
        env = [f"EMBEDDING_BACKEND={args.backend}"] if args.backend else []
        report["site"] = await site_in_subprocess(args.docs_dir, args.site_data_dir, args.site_max_pages, env)
    print(crawl_table(report) if args.crawl_only else markdown_table(report))
    write_report(report, args.out)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    prepare_environment()
    asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    main()
