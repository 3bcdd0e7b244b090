"""Search: candidate legs (dense, lexical, SPLADE), weighted reciprocal-rank fusion, reranking, answer budget."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.dense import Embedder
from mcp_web_ingest.encoders.rerank import Reranker
from mcp_web_ingest.encoders.splade import SparseEncoder
from mcp_web_ingest.errors import InvalidInputError, ServiceError
from mcp_web_ingest.ingest.symbols import is_symbol_like
from mcp_web_ingest.metrics import Metrics
from mcp_web_ingest.models import Hit
from mcp_web_ingest.search.fusion import Fused, reciprocal_rank_fusion, share_budget, trim_text
from mcp_web_ingest.search.request import SearchMode, SearchRequest
from mcp_web_ingest.storage.interfaces import Store
from mcp_web_ingest.storage.records import SearchFilter, StoredChunk

log = logging.getLogger(__name__)

MIN_SNIPPET_CHARS = 200


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


class Retriever:
    """Runs the legs a mode asks for, fuses them, optionally reranks, and fits the answer to a character budget."""

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
            raise InvalidInputError("mode 'sparse' needs the SPLADE service: set SPLADE_URL")
        where = SearchFilter(request.collection, request.url_prefix, request.symbol)
        use_rerank = self.reranker is not None and request.rerank
        started = time.perf_counter()
        try:
            outcome = await self._search(request.query, request.k, where, mode, request.max_chars, use_rerank)
        except Exception:
            self.metrics.queries.labels(mode, "error").inc()
            raise
        self.metrics.queries.labels(mode, "ok").inc()
        self.metrics.query_duration.labels(mode).observe(time.perf_counter() - started)
        return outcome

    async def _dense(self, query: str, n: int, where: SearchFilter) -> list[tuple[int, float]]:
        return await self.store.index.dense_candidates(await self.embedder.embed_query(query), n, where)

    async def _sparse(self, query: str, n: int, where: SearchFilter) -> list[tuple[int, float]]:
        assert self.sparse is not None
        vector = (await self.sparse.encode([query], "query"))[0]
        return await self.store.index.sparse_candidates(vector, n, where)

    def _weights(self) -> dict[str, float]:
        """RRF weight of each leg, by leg name."""
        return {
            "dense": self.settings.fusion_weight_dense,
            "lexical": self.settings.fusion_weight_lexical,
            "sparse": self.settings.fusion_weight_sparse,
            "symbol": self.settings.fusion_weight_symbol,
            "qdrant_rrf": 1.0,  # the Qdrant store's server-side fusion of the other legs
        }

    async def _server_fused(
        self, query: str, n: int, where: SearchFilter, notes: list[str], fused_from: list[str]
    ) -> list[tuple[int, float]]:
        """Hybrid in one Qdrant Query API call: a prefetch per leg, fused there by weighted RRF."""
        # The two query encoders run at once; only SPLADE may fail softly.
        dense, splade = await asyncio.gather(
            self.embedder.embed_query(query),
            self.sparse.encode([query], "query") if self.sparse is not None else asyncio.sleep(0, None),
            return_exceptions=True,
        )
        if isinstance(dense, BaseException):
            raise dense
        legs: dict[str, object] = {"dense": dense, "lexical": query}
        if isinstance(splade, ServiceError):
            notes.append(f"SPLADE leg skipped: {splade}")
        elif isinstance(splade, BaseException):
            raise splade
        elif splade is not None:
            legs["sparse"] = splade[0]
        fused_from.extend(legs)
        weights = self._weights()
        return await self.store.index.fused_candidates(legs, weights, self.settings.rrf_k, n, where)

    async def _legs(
        self, query: str, n: int, where: SearchFilter, mode: SearchMode, notes: list[str], fused_from: list[str]
    ) -> dict[str, list[tuple[int, float]]]:
        if mode == "hybrid" and self.store.index.fuses_server_side:
            # Each hit's provenance is then the fused rank; legs_used names the legs that went into it.
            return {"qdrant_rrf": await self._server_fused(query, n, where, notes, fused_from)}
        wanted = {
            "dense": mode in ("hybrid", "dense"),
            "lexical": mode in ("hybrid", "lexical"),
            "sparse": mode == "sparse" or (mode == "hybrid" and self.sparse is not None),
        }
        calls = {"dense": self._dense, "lexical": self.store.index.lexical_candidates, "sparse": self._sparse}
        names = [name for name, on in wanted.items() if on]
        results = await asyncio.gather(*(calls[name](query, n, where) for name in names), return_exceptions=True)
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
        self, query: str, fused: list[Fused], rows: dict[int, StoredChunk], notes: list[str]
    ) -> dict[int, float] | None:
        assert self.reranker is not None
        candidates = [f.chunk_id for f in fused if f.chunk_id in rows]
        texts = [" › ".join(rows[c].section_path) + "\n\n" + rows[c].text for c in candidates]
        try:
            scores = await self.reranker.rerank(query, texts)
        except ServiceError as exc:
            notes.append(f"reranking skipped, fused order kept: {exc}")
            return None
        return dict(zip(candidates, scores, strict=True))

    async def _search(
        self, query: str, k: int, where: SearchFilter, mode: SearchMode, max_chars: int, use_rerank: bool
    ) -> SearchOutcome:
        started = time.perf_counter()
        notes: list[str] = []
        n = max(self.settings.rerank_initial_k, k)
        fused_from: list[str] = []
        legs = await self._legs(query, n, where, mode, notes, fused_from)
        pinned: list[int] = []
        if mode == "hybrid" and self.settings.enable_symbol_extraction and is_symbol_like(query):
            # A query that names a symbol exactly: its defining chunks lead, the chunks using it join the fusion.
            symbol_leg = await self.store.catalog.symbol_candidates(query.strip("`() "), n, where)
            if symbol_leg:
                legs["symbol"] = symbol_leg
                pinned = [cid for cid, score in symbol_leg if score == 4.0]
        fused = reciprocal_rank_fusion(legs, self._weights(), self.settings.rrf_k)
        if pinned:
            first = set(pinned)
            fused = [f for f in fused if f.chunk_id in first] + [f for f in fused if f.chunk_id not in first]
        # Reranking sees RERANK_INITIAL_K candidates; otherwise a few spare ones cover dropped duplicates.
        pool = fused[: self.settings.rerank_initial_k] if use_rerank else fused[: k * 3]
        rows = await self.store.catalog.get_chunks([f.chunk_id for f in pool])
        rerank_scores = await self._rerank(query, pool, rows, notes) if use_rerank and pool else None
        if rerank_scores is not None:
            # Exact symbol definitions stay first; the cross-encoder orders everything else.
            first = set(pinned)
            pool = sorted(pool, key=lambda f: (f.chunk_id not in first, -rerank_scores.get(f.chunk_id, float("-inf"))))
        hits: list[Hit] = []
        seen_text: set[str] = set()
        for f in pool:
            row = rows.get(f.chunk_id)
            if row is None or row.content_hash in seen_text:
                continue
            seen_text.add(row.content_hash)
            rerank_score = rerank_scores.get(f.chunk_id) if rerank_scores is not None else None
            hits.append(
                Hit(
                    chunk_id=row.id,
                    page_id=row.page_id,
                    url=row.url,
                    title=row.title,
                    section_path=row.section_path,
                    anchor=row.anchor,
                    text=row.text,
                    score=f.score,
                    legs=f.legs,
                    collection=row.collection,
                    rerank_score=rerank_score,
                )
            )
            if len(hits) == k:
                break
        # Fewer useful snippets beat many useless ones: keep only as many hits as the budget can show meaningfully.
        found = len(hits)
        hits = hits[: max(1, max_chars // MIN_SNIPPET_CHARS)]
        allowances = share_budget([len(h.text) for h in hits], max_chars, MIN_SNIPPET_CHARS)
        truncated = len(hits) < found or any(a < len(h.text) for a, h in zip(allowances, hits, strict=True))
        trimmed = tuple(
            Hit(**{**h.__dict__, "text": trim_text(h.text, a)}) for h, a in zip(hits, allowances, strict=True)
        )
        return SearchOutcome(
            query=query,
            mode=mode,
            hits=trimmed,
            legs_used=tuple(leg for name in legs for leg in (fused_from if name == "qdrant_rrf" else (name,))),
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            truncated=truncated,
            notes=tuple(notes),
            reranked=rerank_scores is not None,
        )
