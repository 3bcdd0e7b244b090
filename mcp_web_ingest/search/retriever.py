"""Search: candidate legs (dense, lexical, SPLADE), page-aware fusion, reranking, results per page, answer budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.dense import Embedder
from mcp_web_ingest.encoders.rerank import Reranker
from mcp_web_ingest.encoders.splade import SparseEncoder
from mcp_web_ingest.errors import InvalidInputError, ServiceError
from mcp_web_ingest.ingest.symbols import is_symbol_like
from mcp_web_ingest.ingest.versions import select_versions
from mcp_web_ingest.metrics import Metrics
from mcp_web_ingest.models import Hit
from mcp_web_ingest.search.fusion import Fused, FusedPage, fuse_pages, share_budget, trim_text
from mcp_web_ingest.search.request import SearchMode, SearchRequest
from mcp_web_ingest.storage.interfaces import Store
from mcp_web_ingest.storage.records import SearchFilter, StoredChunk

log = logging.getLogger(__name__)

MIN_SNIPPET_CHARS = 200
CODE_PAGE_SHARE = 0.8  # a page with more of its text in code blocks is a source listing (SEARCH_CODE_PAGE_PENALTY)
MAX_ALSO_MATCHED = 5  # other sections of a page named on its first result

T = TypeVar("T")


@dataclass(frozen=True)
class SearchOutcome:
    """Search results with how they were obtained."""

    query: str
    mode: str
    hits: tuple[Hit, ...]
    legs_used: tuple[str, ...]
    took_ms: float
    truncated: bool = False
    notes: tuple[str, ...] = ()
    reranked: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)  # per leg (query encoding included), fusion, rerank


class Retriever:
    """Runs the legs a mode asks for, fuses them into pages, optionally reranks, and fits the answer to a budget."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: Store,
        metrics: Metrics,
        sparse: SparseEncoder | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.metrics = metrics
        self.sparse = sparse
        self.reranker = reranker

    async def search(self, request: SearchRequest, mode: SearchMode) -> SearchOutcome:
        """Search in ``mode`` (the pipeline resolves the request's mode), record metrics."""
        if mode == "sparse" and self.sparse is None:
            raise InvalidInputError(
                "mode 'sparse' needs SPLADE: set SPLADE_URL (a service) or SPLADE_MODEL_DIR (in-process)"
            )
        labels = await self.store.catalog.version_labels(request.collection)
        versions = select_versions(labels, request.version)
        where = SearchFilter(request.collection, request.url_prefix, request.symbol, versions)
        use_rerank = self.reranker is not None and request.rerank
        started = time.perf_counter()
        try:
            outcome = await self._search(request.query, request.k, where, mode, request.max_chars, use_rerank)
        except Exception:
            self.metrics.queries.labels(mode, "error").inc()
            raise
        self.metrics.queries.labels(mode, "ok").inc()
        self.metrics.query_duration.labels(mode).observe(time.perf_counter() - started)
        if versions == () and request.version not in (None, "latest", "all"):
            known = ", ".join(sorted({v for found in labels.values() for v in found}))
            note = f"no pages are labelled version {request.version}; indexed versions: {known}"
            outcome = replace(outcome, notes=(*outcome.notes, note))
        return outcome

    async def _dense(self, query: str, n: int, where: SearchFilter) -> list[tuple[int, float]]:
        return await self.store.index.dense_candidates(await self.embedder.embed_query(query), n, where)

    async def _sparse(self, query: str, n: int, where: SearchFilter) -> list[tuple[int, float]]:
        assert self.sparse is not None
        vector = (await self.sparse.encode([query], "query"))[0]
        return await self.store.index.sparse_candidates(vector, n, where)

    def _weights(self) -> dict[str, float]:
        """Fusion weight of each leg, by leg name."""
        return {
            "dense": self.settings.fusion_weight_dense,
            "lexical": self.settings.fusion_weight_lexical,
            "sparse": self.settings.fusion_weight_sparse,
            "symbol": self.settings.fusion_weight_symbol,
        }

    async def _legs(
        self, query: str, n: int, where: SearchFilter, mode: SearchMode, notes: list[str], timings: dict[str, float]
    ) -> dict[str, list[tuple[int, float]]]:
        wanted = {
            "dense": mode in ("hybrid", "dense"),
            "lexical": mode in ("hybrid", "lexical"),
            "sparse": mode == "sparse" or (mode == "hybrid" and self.sparse is not None),
        }
        calls = {"dense": self._dense, "lexical": self.store.index.lexical_candidates, "sparse": self._sparse}
        names = [name for name, on in wanted.items() if on]
        results = await asyncio.gather(
            *(_timed(calls[name](query, n, where), name, timings) for name in names), return_exceptions=True
        )
        legs: dict[str, list[tuple[int, float]]] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, ServiceError) and name == "sparse" and mode != "sparse":
                # Degrade, do not fail: the other legs still answer, and the result says what was missing.
                notes.append(f"SPLADE leg skipped: {result}")
            elif isinstance(result, BaseException):
                raise result
            else:
                legs[name] = result
        return legs

    async def _rerank(
        self, query: str, pages: list[FusedPage], pinned: set[int], notes: list[str]
    ) -> tuple[list[FusedPage], dict[int, float] | None, dict[int, StoredChunk]]:
        """Pages and chunks reordered by the cross-encoder over the first RERANK_INITIAL_K chunks; the rows it read."""
        assert self.reranker is not None
        pool = [c.chunk_id for page in pages for c in page.chunks][: self.settings.rerank_initial_k]
        rows = await self.store.catalog.get_chunks(pool)
        candidates = [c for c in pool if c in rows]
        texts = [" › ".join(rows[c].section_path) + "\n\n" + rows[c].text for c in candidates]
        try:
            scores = dict(zip(candidates, await self.reranker.rerank(query, texts), strict=True))
        except ServiceError as exc:
            notes.append(f"reranking skipped, fused order kept: {exc}")
            return pages, None, rows

        def chunk_key(c: Fused) -> tuple[bool, float]:
            # Exact symbol definitions stay first; the cross-encoder orders everything else.
            return c.chunk_id not in pinned, -scores.get(c.chunk_id, float("-inf"))

        reordered = [replace(page, chunks=tuple(sorted(page.chunks, key=chunk_key))) for page in pages]
        return sorted(reordered, key=lambda page: chunk_key(page.chunks[0])), scores, rows

    def _shown(self, page: FusedPage) -> list[Fused]:
        """The chunks of a page given as results: the best, then others up to the cap that score at least half."""
        best = page.chunks[0]
        more = [c for c in page.chunks[1:] if c.score >= 0.5 * best.score]
        return [best, *more][: self.settings.search_chunks_per_page]

    async def _hits(
        self,
        pages: list[FusedPage],
        k: int,
        rerank_scores: dict[int, float] | None,
        rows: dict[int, StoredChunk],
    ) -> list[Hit]:
        """Up to k results, page by page, each page's other matching sections named on its first result.

        rows: chunk rows already read (by reranking); the others needed are read here.
        """
        pages = pages[: k + 5]  # a few spare pages cover results dropped as duplicates
        shown = {page.page_id: self._shown(page) for page in pages}
        # Rows of what is shown and of the sections that may be named beside it, not of every candidate. After
        # reranking a shown chunk need not be among the page's first ones, so the shown ones are asked for by id.
        wanted = {
            c.chunk_id
            for page in pages
            for c in (*shown[page.page_id], *page.chunks[: len(shown[page.page_id]) + MAX_ALSO_MATCHED])
        }
        rows = rows | await self.store.catalog.get_chunks([c for c in wanted if c not in rows])
        hits: list[Hit] = []
        seen_text: set[str] = set()
        for page in pages:
            ids = {c.chunk_id for c in shown[page.page_id]}
            shown_sections = {_section(rows[i]) for i in ids if i in rows}
            also: dict[str, str | None] = {}
            for c in page.chunks:
                row = rows.get(c.chunk_id)
                if c.chunk_id in ids or row is None or _section(row) in shown_sections:
                    continue  # a section is named once: shown, or listed beside the page's first result
                if len(also) < MAX_ALSO_MATCHED:
                    also.setdefault(_section(row), row.anchor)
            for position, f in enumerate(shown[page.page_id]):
                row = rows.get(f.chunk_id)
                if row is None or row.content_hash in seen_text or len(hits) == k:
                    continue
                seen_text.add(row.content_hash)
                hits.append(
                    Hit(
                        chunk_id=row.id,
                        page_id=row.page_id,
                        url=row.url,
                        title=row.title,
                        section_path=row.section_path,
                        anchor=row.anchor,
                        text=row.text,
                        score=page.score,
                        legs=f.legs,
                        collection=row.collection,
                        rerank_score=rerank_scores.get(f.chunk_id) if rerank_scores is not None else None,
                        also_matched=tuple(also.items()) if position == 0 else (),
                        provenance=row.provenance,
                    )
                )
        if rerank_scores is not None:  # the cross-encoder's order, a page's second result after other pages' best
            hits.sort(key=lambda h: -(h.rerank_score if h.rerank_score is not None else float("-inf")))
        return hits

    async def _search(
        self, query: str, k: int, where: SearchFilter, mode: SearchMode, max_chars: int, use_rerank: bool
    ) -> SearchOutcome:
        started = time.perf_counter()
        notes: list[str] = []
        timings: dict[str, float] = {}
        n = max(self.settings.rerank_initial_k, k)
        legs = await self._legs(query, n, where, mode, notes, timings)
        pinned: set[int] = set()
        if mode == "hybrid" and self.settings.enable_symbol_extraction and is_symbol_like(query):
            # A query that names a symbol exactly: its defining chunks lead, the chunks using it join the fusion.
            symbol_leg = await _timed(
                self.store.catalog.symbol_candidates(query.strip("`() "), n, where), "symbol", timings
            )
            if symbol_leg:
                legs["symbol"] = symbol_leg
                pinned = {cid for cid, score in symbol_leg if score == 4.0}
        fusing = time.perf_counter()
        chunk_pages = await self.store.catalog.chunk_pages(list({cid for leg in legs.values() for cid, _ in leg}))
        page_of = {cid: ref.page_id for cid, ref in chunk_pages.items()}
        penalty = 1.0 - self.settings.search_code_page_penalty
        code_pages = {ref.page_id: penalty for ref in chunk_pages.values() if ref.code_share > CODE_PAGE_SHARE}
        pages = fuse_pages(legs, page_of, self._weights(), self.settings.fusion_method, self.settings.rrf_k, code_pages)
        if pinned:
            pages = _pin(pages, pinned, set(code_pages))
        timings["fusion"] = _ms_since(fusing)
        rerank_scores: dict[int, float] | None = None
        rows: dict[int, StoredChunk] = {}
        if use_rerank and pages:
            pages, rerank_scores, rows = await _timed(self._rerank(query, pages, pinned, notes), "rerank", timings)
        reading = time.perf_counter()
        hits = await self._hits(pages, k, rerank_scores, rows)
        timings["results"] = _ms_since(reading)
        # Fewer useful snippets beat many useless ones: keep only as many hits as the budget can show meaningfully.
        found = len(hits)
        hits = hits[: max(1, max_chars // MIN_SNIPPET_CHARS)]
        allowances = share_budget([len(h.text) for h in hits], max_chars, MIN_SNIPPET_CHARS)
        truncated = len(hits) < found or any(a < len(h.text) for a, h in zip(allowances, hits, strict=True))
        trimmed = tuple(replace(h, text=trim_text(h.text, a)) for h, a in zip(hits, allowances, strict=True))
        return SearchOutcome(
            query=query,
            mode=mode,
            hits=trimmed,
            legs_used=tuple(legs),
            took_ms=_ms_since(started),
            truncated=truncated,
            notes=tuple(notes),
            reranked=rerank_scores is not None,
            timings_ms=timings,
        )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _timed(work: Awaitable[T], name: str, timings: dict[str, float]) -> T:
    """Await ``work``, recording its milliseconds under ``name`` (also when it fails)."""
    started = time.perf_counter()
    try:
        return await work
    finally:
        timings[name] = _ms_since(started)


def _section(row: StoredChunk) -> str:
    return " › ".join(row.section_path) or row.title


def _pin(pages: list[FusedPage], pinned: set[int], listings: set[int]) -> list[FusedPage]:
    """Pages holding an exact symbol definition first, the definition first among their chunks."""
    first, rest = [], []
    for page in pages:
        # A definition in a source listing is ranked like any other page: the documentation of the symbol (or the
        # page that uses it as asked) answers better than its source code.
        if page.page_id not in listings and any(c.chunk_id in pinned for c in page.chunks):
            chunks = sorted(page.chunks, key=lambda c: c.chunk_id not in pinned)
            first.append(replace(page, chunks=tuple(chunks)))
        else:
            rest.append(page)
    return first + rest
