"""The Store: a catalog and a vector index, with the writes and deletes that must keep them in step.

With an index outside the catalog (Qdrant), a chunk's entry id is its catalog chunk id. A page write reserves the
ids, upserts the entries (idempotent), then commits the rows, then deletes the entries of the chunks it replaced; a
failed row write removes the entries it wrote. A crash between the steps leaves only entries without rows, which
search ignores (results are read back from the catalog) and `repair` deletes; the catalog keeps each chunk's dense
vector, so `repair` can also restore missing entries without embedding anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from mcp_web_ingest.models import Chunk, SparseVec, Symbol
from mcp_web_ingest.storage.interfaces import Catalog, VectorIndex
from mcp_web_ingest.storage.records import ChunkEntry, PageRecord, check_counts


class IndexedStore:
    """Pages in the catalog, their vectors in the index: the Store that callers hold."""

    def __init__(self, catalog: Catalog, index: VectorIndex) -> None:
        self.catalog = catalog
        self.index = index

    async def open(self) -> None:
        """Connect the index."""
        await self.index.open()

    async def aclose(self) -> None:
        """Disconnect the index."""
        await self.index.aclose()

    async def ping(self) -> None:
        """Raise StoreError when the catalog or the index does not answer."""
        await self.catalog.ping()
        await self.index.ping()

    async def ensure_embedding_space(self, model: str, dimension: int) -> None:
        """Record (or check) the embedding model in the catalog, then prepare the index for its vectors."""
        await self.catalog.ensure_embedding_space(model, dimension)
        await self.index.ensure_embedding_space(dimension)

    async def reset_embedding_space(self, model: str, dimension: int) -> int:
        """Drop the index's vectors and the catalog's, record the new model; returns the chunks to embed."""
        await self.index.drop_embedding_space()
        count = await self.catalog.reset_embedding_space()
        await self.ensure_embedding_space(model, dimension)
        return count

    async def replace_page(
        self,
        collection: str,
        page: PageRecord,
        chunks: Sequence[Chunk],
        vectors: Sequence[np.ndarray],
        sparse: Sequence[SparseVec] | None = None,
        symbols: Sequence[Sequence[Symbol]] | None = None,
    ) -> int:
        """Write a page and all its chunks atomically; with an index outside the catalog, its entries first."""
        check_counts(chunks, vectors, sparse)
        postings = sparse if self.index.keeps_sparse_postings else None
        if not self.index.outside_catalog:
            written = await self.catalog.write_page(collection, page, chunks, vectors, symbols, postings=postings)
            return written.page_id
        ids = await self.catalog.reserve_chunk_ids(len(chunks))
        await self.index.upsert(
            [
                ChunkEntry(
                    ids[i],
                    collection,
                    page.url,
                    page.domain,
                    " › ".join(c.section_path),
                    c.text,
                    vectors[i],
                    sparse[i] if sparse is not None else None,
                )
                for i, c in enumerate(chunks)
            ]
        )
        try:
            written = await self.catalog.write_page(
                collection, page, chunks, vectors, symbols, postings=postings, chunk_ids=ids
            )
        except BaseException:
            # The rows did not commit: their entries go too (even when cancelled), or search would see ghosts.
            await asyncio.shield(self.index.delete(ids))
            raise
        await self.index.delete(written.replaced)
        return written.page_id

    async def set_vectors(self, ids: Sequence[int], vectors: Sequence[np.ndarray]) -> None:
        """Store re-embedded vectors in the catalog, then rewrite the chunks' index entries from it."""
        await self.catalog.set_vectors(ids, vectors)
        await self.index.refresh(ids)

    async def delete_page(self, page_id: int) -> None:
        """Remove a page with its chunks, then their index entries."""
        deleted = await self.catalog.delete_page(page_id, returning_ids=self.index.outside_catalog)
        await self.index.delete(deleted.chunk_ids)

    async def delete_source(self, collection: str, domain: str | None = None, url_prefix: str | None = None) -> int:
        """Delete a collection's pages (all, of one domain, or under a URL prefix); returns pages deleted."""
        deleted = await self.catalog.delete_source(
            collection, domain, url_prefix, returning_ids=self.index.outside_catalog
        )
        await self.index.delete(deleted.chunk_ids)
        return deleted.pages

    async def truncate_all(self) -> None:
        """Delete everything in the index and the catalog (tests and `db reset`)."""
        await self.index.clear()
        await self.catalog.truncate_all()
