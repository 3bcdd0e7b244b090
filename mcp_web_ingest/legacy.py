"""The legacy policy (USE_UNIFIED_PIPELINE=false): fixed-size chunks, dense-only search; same store, same tools.

The conservative path operators roll back to: no heading context, no lexical leg, nothing optional. It reads and
writes the same tables as the unified policy, so pages indexed by either stay searchable by both and switching needs
no re-index; each chunk records which pipeline produced it.
"""

from __future__ import annotations

from mcp_web_ingest.ingest.chunking import chunk_fixed
from mcp_web_ingest.models import Chunk, ExtractedPage
from mcp_web_ingest.pipeline import PipelinePolicy


def chunk_fixed_page(page: ExtractedPage, max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Plain fixed-size windows over the page's markdown, with only the page title as context."""
    return chunk_fixed(page.markdown, page.title, max_tokens, overlap_tokens)


LEGACY = PipelinePolicy(
    name="legacy",
    chunker=chunk_fixed_page,
    default_mode="dense",
    modes=("dense",),  # a lexical, sparse or hybrid request is served dense, and says so
    rerank=False,
    symbols=False,
    splade=False,  # its chunks get SPLADE vectors by back-fill if the unified policy runs later
    switch="USE_UNIFIED_PIPELINE=false",
)
