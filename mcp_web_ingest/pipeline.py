"""The pipeline behind the tools: an indexer (indexer.py) and a retriever (search/) run under one policy.

One pipeline class; a `PipelinePolicy` says which features it runs with (unified here, legacy in legacy.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.dense import Embedder
from mcp_web_ingest.encoders.rerank import Reranker
from mcp_web_ingest.encoders.splade import SparseEncoder
from mcp_web_ingest.indexer import Chunker, Indexer, IndexOutcome, ProgressFn
from mcp_web_ingest.ingest.auth_profiles import RequestAuth
from mcp_web_ingest.ingest.chunking import chunk_page
from mcp_web_ingest.ingest.fetch import Fetcher
from mcp_web_ingest.metrics import Metrics
from mcp_web_ingest.models import Chunk, ExtractedPage
from mcp_web_ingest.search.request import SearchMode, SearchRequest
from mcp_web_ingest.search.retriever import Retriever, SearchOutcome
from mcp_web_ingest.storage.interfaces import Store

__all__ = ["UNIFIED", "IndexOutcome", "Pipeline", "PipelinePolicy", "PolicyPipeline", "ProgressFn", "SearchOutcome"]


class Pipeline(Protocol):
    """What the tools call; one class implements it, under the unified or the legacy policy."""

    name: str

    async def index_page(
        self,
        url: str,
        collection: str | None = None,
        progress: ProgressFn | None = None,
        *,
        force: bool = False,
        skip_duplicates: bool = False,
        auth: RequestAuth | None = None,
        version: str | None = None,
    ) -> IndexOutcome:
        """Fetch, extract, chunk, embed and store one page (``auth``: credentials sent where they apply; ``version``:
        the documentation version it belongs to, else read from its URL)."""
        ...

    async def search(self, request: SearchRequest) -> SearchOutcome:
        """Find the chunks that best answer a request (checked where it entered: `SearchRequest.create`)."""
        ...

    async def backfill_sparse(self, batch: int = 64) -> int:
        """Add SPLADE postings to chunks stored without them; how many were filled (0 when SPLADE is off)."""
        ...


@dataclass(frozen=True)
class PipelinePolicy:
    """What a pipeline runs with: its chunker, the search modes it serves, and which optional features are on."""

    name: str  # recorded on every chunk it writes, and reported by health
    chunker: Chunker
    default_mode: SearchMode  # "hybrid" falls back to "dense" under ENABLE_HYBRID_SEARCH=false
    modes: tuple[SearchMode, ...]  # any other mode is served in the default one, with a note that says so
    rerank: bool  # cross-encoder reranking (when a reranker is configured)
    symbols: bool  # code symbols per chunk (when ENABLE_SYMBOL_EXTRACTION)
    splade: bool  # SPLADE vectors and the sparse leg (when SPLADE_URL or SPLADE_MODEL_DIR is set)
    switch: str  # the setting that selects this policy, for notes


UNIFIED = PipelinePolicy(
    name="unified",
    chunker=chunk_page,  # heading-aware, each chunk embedded with its section path
    default_mode="hybrid",
    modes=("hybrid", "dense", "lexical", "sparse"),
    rerank=True,
    symbols=True,
    splade=True,
    switch="USE_UNIFIED_PIPELINE=true",
)


class PolicyPipeline:
    """Index pages and search them with the features its policy turns on (unified by default)."""

    def __init__(
        self,
        settings: Settings,
        fetcher: Fetcher,
        embedder: Embedder,
        store: Store,
        metrics: Metrics,
        sparse: SparseEncoder | None = None,
        reranker: Reranker | None = None,
        *,
        policy: PipelinePolicy = UNIFIED,
    ) -> None:
        self.policy = policy
        self.name = policy.name
        self.settings = settings
        # A service the policy leaves out is never called, as if it were not configured.
        sparse = sparse if policy.splade else None
        self.indexer = Indexer(
            settings,
            fetcher,
            embedder,
            store,
            metrics,
            name=policy.name,
            chunker=policy.chunker,
            extract_symbols=policy.symbols,
            sparse=sparse,
        )
        self.retriever = Retriever(settings, embedder, store, metrics, sparse, reranker if policy.rerank else None)

    # --- indexing -----------------------------------------------------------------------------------------------

    def chunk(self, page: ExtractedPage) -> list[Chunk]:
        """Split a page into chunks the way this pipeline's policy does."""
        return self.indexer.chunk(page)

    async def index_page(
        self,
        url: str,
        collection: str | None = None,
        progress: ProgressFn | None = None,
        *,
        force: bool = False,
        skip_duplicates: bool = False,
        auth: RequestAuth | None = None,
        version: str | None = None,
    ) -> IndexOutcome:
        """Index one page (see `Indexer.index_page`)."""
        return await self.indexer.index_page(
            url, collection, progress, force=force, skip_duplicates=skip_duplicates, auth=auth, version=version
        )

    async def backfill_sparse(self, batch: int = 64) -> int:
        """Add SPLADE postings to chunks stored while SPLADE was down (none under a policy without SPLADE)."""
        return await self.indexer.backfill_sparse(batch)

    # --- search -------------------------------------------------------------------------------------------------

    def default_mode(self) -> SearchMode:
        """The policy's default mode; hybrid is served dense under ENABLE_HYBRID_SEARCH=false."""
        mode = self.policy.default_mode
        return "dense" if mode == "hybrid" and not self.settings.enable_hybrid_search else mode

    async def search(self, request: SearchRequest) -> SearchOutcome:
        """Search in the requested mode when the policy serves it, else in its default mode, with a note."""
        asked = request.mode
        mode = asked if asked is not None and asked in self.policy.modes else self.default_mode()
        outcome = await self.retriever.search(request, mode)
        if asked is not None and asked != mode:
            note = f"mode {asked!r} is not available on the {self.name} pipeline ({self.policy.switch}); served {mode}"
            outcome = replace(outcome, notes=(*outcome.notes, note))
        return outcome
