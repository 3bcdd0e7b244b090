"""The legacy pipeline (USE_UNIFIED_PIPELINE=false): fixed-size chunks, dense-only search; same store, same tools."""

from __future__ import annotations

from mcp_web_ingest.ingest.chunking import chunk_fixed
from mcp_web_ingest.models import Chunk, ExtractedPage
from mcp_web_ingest.pipeline import SearchMode, SearchOutcome, UnifiedPipeline


class LegacyPipeline(UnifiedPipeline):
    """The conservative path operators roll back to: no heading context, no lexical leg, nothing optional.

    It reads and writes the same tables as the unified pipeline, so pages indexed by either stay searchable by
    both and switching needs no re-index; each chunk records which pipeline produced it.
    """

    name = "legacy"

    def chunk(self, page: ExtractedPage) -> list[Chunk]:
        """Plain fixed-size windows over the page's markdown, with only the page title as context."""
        return chunk_fixed(
            page.markdown, page.title, self.settings.chunk_max_tokens, self.settings.chunk_overlap_tokens
        )

    def default_mode(self) -> SearchMode:
        """Always dense."""
        return "dense"

    async def search(
        self,
        query: str,
        k: int | None = None,
        collection: str | None = None,
        url_prefix: str | None = None,
        mode: SearchMode | None = None,
        max_chars: int | None = None,
        rerank: bool | None = None,
        symbol: str | None = None,
    ) -> SearchOutcome:
        """Dense-only search, never reranked; a lexical, sparse or hybrid request is served dense, and says so."""
        outcome = await super().search(query, k, collection, url_prefix, "dense", max_chars, False, symbol)
        if mode not in (None, "dense"):
            note = f"mode {mode!r} is not available on the legacy pipeline (USE_UNIFIED_PIPELINE=false); served dense"
            outcome = SearchOutcome(**{**outcome.__dict__, "notes": (*outcome.notes, note)})
        return outcome

    def symbols(self, chunks: list[Chunk]) -> None:
        """The legacy pipeline extracts no symbols."""
        return None

    async def _sparse_vectors(self, chunks: list[Chunk]) -> None:
        """The legacy pipeline stores no SPLADE vectors (its chunks are back-filled if the unified one runs later)."""
        return None
