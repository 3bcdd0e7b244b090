"""Performance bench: extraction, embedding, end-to-end indexing, re-indexing, search latency and memory.

Usage: python tools/bench.py [--docs-dir DIR] [--pages N] [--synthetic N] [--single N] [--data-dir .data/bench/pipeline]
                             [--backend torch|onnx|onnx-int8] [--crawl-concurrency 8] [--no-crawl4ai] [--crawl-only]
                             [--out bench.json]

Runs on the local Python docs served on 127.0.0.1 against a fresh index (the DATA_DIR's pages and chunks are
deleted first). First, on an idle machine, crawl + extract of the pages by our crawl path (the runtime's fetcher, then
the extraction worker pool, as the indexer does) vs crawl4ai's HTTP crawler with its markdown generator
(tools/bench_crawl4ai.py in .tools/crawl4ai-venv), same URLs and concurrency: pages/s of each, ours ÷ theirs, fenced
code blocks kept and RSS. Then: extract pages/s (pure, one process), embedder-only chunks/s on the exact chunk texts vs
end-to-end indexing chunks/s (pipeline efficiency), unchanged re-index time ÷ first index time, search p50/p95/p99
per mode beside the floor (query embedding + each leg's raw SQL), the same at a synthetic size, single-page index
p50/p95 and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_web_ingest.errors import WebIngestError
from mcp_web_ingest.ingest.extract import extract_page
from mcp_web_ingest.ingest.extract_worker import WORKERS, extract_isolated
from mcp_web_ingest.models import Chunk, ExtractedPage, sha256_hex
from mcp_web_ingest.search.request import SearchRequest
from mcp_web_ingest.storage.records import PageRecord, SearchFilter
from tools.bench_crawl4ai import count_code_blocks, rate
from tools.bench_report import crawl_extract_row, markdown_table
from tools.bench_site import served_elsewhere
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

ROOT = Path(__file__).resolve().parent.parent
CRAWL4AI_PYTHON = ROOT / ".tools/crawl4ai-venv/bin/python"
CRAWL4AI_SCRIPT = ROOT / "tools/bench_crawl4ai.py"
WORKER_MODULE = "mcp_web_ingest.ingest.extract_worker"
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


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float:
    """Current resident set size of this process in MiB (psutil when installed, else the peak)."""
    try:
        import psutil
    except ImportError:
        return peak_rss_mb()
    return round(psutil.Process().memory_info().rss / 2**20, 1)


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


def _workers() -> list[Any]:
    """psutil handles of this process's extraction workers (empty without psutil)."""
    try:
        import psutil
    except ImportError:
        return []
    out = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if WORKER_MODULE in " ".join(child.cmdline()):
                out.append(child)
    return out


def worker_rss_mb() -> list[float]:
    """Current RSS (MiB) of each of this process's extraction workers (empty without psutil)."""
    out = []
    for worker in _workers():
        with contextlib.suppress(Exception):
            out.append(round(worker.memory_info().rss / 2**20, 1))
    return out


def cpu_seconds() -> float:
    """CPU time so far of this process, its live extraction workers and its waited-for children (recycled workers)."""
    total = time.process_time()
    for worker in _workers():
        with contextlib.suppress(Exception):
            t = worker.cpu_times()
            total += t.user + t.system
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + children.ru_utime + children.ru_stime


@contextlib.asynccontextmanager
async def sampling_workers(interval_s: float = 0.2) -> AsyncIterator[dict[str, float]]:
    """Sample the extraction workers' RSS every interval_s while the block runs: peak of their sum and of one."""
    peaks = {"sum": 0.0, "one": 0.0}

    async def sample() -> None:
        while True:
            rss = await asyncio.to_thread(worker_rss_mb)
            peaks["sum"] = max(peaks["sum"], round(sum(rss), 1))
            peaks["one"] = max(peaks["one"], max(rss, default=0.0))
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(sample())
    try:
        yield peaks
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def warm_extraction(timeout_s: float) -> None:
    """Start every extraction worker (one extraction each, at once) so that start-up is not timed."""
    html = "<html><head><title>warm</title></head><body><h1>Warm</h1><p>up</p><pre>x = 1</pre></body></html>"
    await asyncio.gather(
        *(asyncio.to_thread(extract_isolated, html, f"http://warm.invalid/{i}", timeout_s) for i in range(WORKERS))
    )


async def crawl_extract_ours(runtime: Any, urls: Sequence[str], concurrency: int = 8) -> dict[str, Any]:
    """Our crawl path on the URLs: fetch with the runtime's fetcher, extract in the worker pool (as the indexer
    does); pages/s of the pages extracted, fenced code blocks kept, and the workers' peak RSS."""
    timeout_s = runtime.settings.extract_timeout_s
    await warm_extraction(timeout_s)
    sem = asyncio.Semaphore(concurrency)
    ok, failed, blocks = 0, 0, 0

    async def one(url: str) -> None:
        nonlocal ok, failed, blocks
        async with sem:
            try:
                fetched = await runtime.fetcher.fetch(url)
                page, _links = await asyncio.to_thread(extract_isolated, fetched.text, fetched.final_url, timeout_s)
            except WebIngestError:
                failed += 1
                return
            ok += 1
            blocks += sum(count_code_blocks(s.markdown) for s in page.sections)

    async with sampling_workers() as workers:
        started, cpu = time.perf_counter(), cpu_seconds()
        await asyncio.gather(*(one(u) for u in urls))
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # only workers that exited (recycled)
    return {
        "pages": len(urls),
        "ok": ok,
        "failed": failed,
        "seconds": round(seconds, 2),
        "pages_per_s": rate(ok, seconds),
        "cpu_s": round(cpu, 2),  # the bench process (fetching, the sampler) and the extraction workers
        "pages_per_cpu_s": rate(ok, cpu),
        "code_blocks": blocks,
        "concurrency": concurrency,
        "workers": WORKERS,
        "workers_peak_rss_mb": workers["sum"] or None,  # sum over the live workers, sampled every 0.2 s
        "worker_peak_rss_mb": workers["one"] or None,
        "exited_children_max_rss_mb": round(children, 1),
        "bench_process_rss_mb": current_rss_mb(),  # fetching runs here, beside the loaded models and the database
    }


async def crawl_extract_crawl4ai(
    urls: Sequence[str], concurrency: int = 8, python: Path = CRAWL4AI_PYTHON, timeout_s: float = 1800
) -> tuple[dict[str, Any] | None, str | None]:
    """crawl4ai's rate on the same URLs (tools/bench_crawl4ai.py in its own venv): its JSON, or None and why."""
    if not usable(python):
        return None, f"{python} is missing (make crawl4ai-runner): crawl4ai was not measured"
    with tempfile.TemporaryDirectory(prefix="bench-crawl4ai-") as tmp:
        url_file = Path(tmp) / "urls.txt"
        url_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
        env = {**os.environ, "CRAWL4_AI_BASE_DIRECTORY": str(Path(tmp) / "base"), "CRAWL4AI_NO_CLOUD_NOTICE": "1"}
        proc = await asyncio.create_subprocess_exec(
            str(python), str(CRAWL4AI_SCRIPT), str(url_file), "--concurrency", str(concurrency),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None, f"crawl4ai did not finish in {timeout_s:g} s"
    lines = out.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-5:]
        return None, f"crawl4ai exited {proc.returncode}: " + " / ".join(tail)
    return json.loads(lines[-1]), None


async def crawl_extract_compare(
    runtime: Any, urls: Sequence[str], concurrency: int = 8, crawl4ai_python: Path | None = CRAWL4AI_PYTHON
) -> dict[str, Any]:
    """Ours then crawl4ai on the same URLs at the same concurrency, and ours ÷ theirs in pages/s."""
    ours = await crawl_extract_ours(runtime, urls, concurrency)
    theirs: dict[str, Any] | None = None
    note: str | None = "crawl4ai comparison skipped (--no-crawl4ai)"
    if crawl4ai_python is not None:
        theirs, note = await crawl_extract_crawl4ai(urls, concurrency, crawl4ai_python)
    return comparison(ours, theirs, note)


def comparison(ours: dict[str, Any], theirs: dict[str, Any] | None, note: str | None = None) -> dict[str, Any]:
    """The crawl_extract part of the report: both measurements, ours ÷ theirs (pages/s), why theirs is missing."""
    return {
        "ours": ours,
        "crawl4ai": theirs,
        "ratio": ratio(ours["pages_per_s"], theirs["pages_per_s"]) if theirs else None,
        "note": None if theirs else note,
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


def usable(python: Path) -> bool:
    """Whether an interpreter exists at this path."""
    return python.exists()


def ratio(a: float, b: float) -> float | None:
    """a ÷ b rounded to 2 places, None when b is 0."""
    return round(a / b, 2) if b else None


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


async def idle_comparison(
    runtime: Any, urls: Sequence[str], concurrency: int = 8, crawl4ai_python: Path | None = CRAWL4AI_PYTHON
) -> dict[str, Any]:
    """crawl_extract_compare once the models are loaded (they load in the background: not during the timing)."""
    await runtime.embedder.embed_documents(["warm-up"])
    if runtime.sparse is not None:
        await runtime.sparse.encode(["warm-up"], "document")
    load_before = round(os.getloadavg()[0], 2)
    crawl = await crawl_extract_compare(runtime, urls, concurrency, crawl4ai_python)
    return {**crawl, "load_avg_1m_before": load_before}


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
        "--backend", choices=("torch", "onnx", "onnx-int8"), default=None, help="default: EMBEDDING_BACKEND's"
    )
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    """Run the bench as the options say and print the table."""
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
    if args.crawl_only:
        print("\n".join(["| measure | value | ratio / note |", "|---|---:|---|", *crawl_extract_row(report)]))
    else:
        print(markdown_table(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    prepare_environment()
    asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    main()
