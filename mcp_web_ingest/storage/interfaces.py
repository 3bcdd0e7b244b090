"""The storage boundary: the Catalog (PostgreSQL, always), a VectorIndex (pgvector + postings, or Qdrant), and the
Store that writes and deletes pages across both.

Callers hold a Store and read through `store.catalog` and `store.index`; what an index can do is declared on it
(`keeps_sparse_postings`, `outside_catalog`) and read directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from mcp_web_ingest.models import Chunk, SparseVec, Symbol
from mcp_web_ingest.storage.records import (
    ChangeEvent,
    ChunkEntry,
    ChunkPage,
    CollectionListing,
    Deleted,
    PageChange,
    PageListing,
    PageRecord,
    RepairReport,
    SearchFilter,
    StoredChunk,
    StoredDocument,
    StoredPage,
    Suggestions,
    WrittenPage,
)

Candidates = list[tuple[int, float]]  # (chunk id, score), best first


class Catalog(Protocol):
    """Pages, chunk text and provenance, symbols, collections and links; every chunk's dense vector as a record."""

    async def ping(self) -> None:
        """Raise StoreError when the database does not answer."""
        ...

    async def counts(self) -> dict[str, int]:
        """Numbers of collections, pages and chunks."""
        ...

    # --- pages ------------------------------------------------------------------------------------------------------

    async def get_page(self, collection: str, url: str) -> StoredPage | None:
        """The stored page of a collection with this URL, if any."""
        ...

    async def touch_page(
        self,
        page_id: int,
        etag: str | None,
        last_modified: str | None,
        http_status: int,
        final_url: str,
        label: tuple[str | None, str] | None = None,
    ) -> None:
        """Record a fresh crawl of an unchanged page (and its version label) without touching its chunks."""
        ...

    async def find_page_by_hash(self, collection: str, content_hash: str, exclude_url: str) -> StoredPage | None:
        """Another page of the collection with exactly this content, if any."""
        ...

    async def page_urls(
        self,
        collection: str | None,
        url_prefix: str | None = None,
        versions: tuple[tuple[str, str], ...] | None = None,
    ) -> list[str]:
        """URLs of stored pages (of a collection, or all), optionally under a prefix and of some versions."""
        ...

    async def version_labels(self, collection: str | None) -> dict[str, list[str]]:
        """The version labels of each collection's pages (of one collection, or all)."""
        ...

    async def set_links(self, page_id: int, links: Sequence[str]) -> None:
        """Remember a page's outgoing links."""
        ...

    async def get_links(self, page_id: int) -> tuple[str, ...]:
        """The outgoing links stored for a page."""
        ...

    async def write_page(
        self,
        collection: str,
        page: PageRecord,
        chunks: Sequence[Chunk],
        vectors: Sequence[np.ndarray],
        symbols: Sequence[Sequence[Symbol]] | None = None,
        *,
        postings: Sequence[SparseVec] | None = None,
        chunk_ids: Sequence[int] | None = None,
    ) -> WrittenPage:
        """Replace a page's row, chunks, symbols (and SPLADE postings) in one transaction; all or nothing.

        chunk_ids: ids reserved beforehand with `reserve_chunk_ids`, else the sequence assigns them.
        """
        ...

    async def delete_page(self, page_id: int, *, returning_ids: bool = False) -> Deleted:
        """Remove a page with its chunks; returning_ids: report the chunks' ids (an index outside needs them)."""
        ...

    # --- collections and sources ------------------------------------------------------------------------------------

    async def ensure_collection(self, name: str) -> int:
        """The id of a collection, creating it when new."""
        ...

    async def list_sources(self) -> list[dict[str, Any]]:
        """Pages, chunks and last crawl per collection and domain, with the state of the newest job there."""
        ...

    async def delete_source(
        self, collection: str, domain: str | None = None, url_prefix: str | None = None, *, returning_ids: bool = False
    ) -> Deleted:
        """Delete a collection's pages (all, of one domain, or under a URL prefix)."""
        ...

    async def truncate_all(self) -> None:
        """Delete every page, chunk and collection except 'default' (tests and `db reset`)."""
        ...

    # --- chunks -----------------------------------------------------------------------------------------------------

    async def reserve_chunk_ids(self, count: int) -> list[int]:
        """Chunk ids taken from the sequence ahead of a write."""
        ...

    async def chunk_pages(self, ids: Sequence[int]) -> dict[int, ChunkPage]:
        """The page of each chunk, by chunk id (chunks deleted meanwhile are left out)."""
        ...

    async def get_chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        """Chunks with their page data, by id."""
        ...

    async def read_document(
        self, *, url: str | None = None, page_id: int | None = None, collection: str | None = None
    ) -> StoredDocument | None:
        """A stored page's markdown sections, by id or by URL (in a collection, else its latest copy)."""
        ...

    async def vectors_by_hash(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored dense vectors of chunk texts by content hash, from any page of the index."""
        ...

    async def changes_since(self, collection: str | None, url_prefix: str | None, since: datetime) -> list[PageChange]:
        """Every logged page change since ``since`` (of one collection, under a URL prefix), oldest first."""
        ...

    async def chunk_entries(self, ids: Sequence[int]) -> list[ChunkEntry]:
        """What an index needs to rebuild these chunks' entries (those that have a dense vector)."""
        ...

    async def chunk_texts(self, ids: Sequence[int]) -> list[tuple[int, str, str]]:
        """(id, context, text) of those of these chunks that exist, by id."""
        ...

    async def chunk_urls(self) -> dict[int, str]:
        """Every chunk's id with its page URL (what `repair` compares an index against)."""
        ...

    async def chunk_ids_matching(self, where: SearchFilter) -> list[int]:
        """Ids of the chunks a search filter admits."""
        ...

    async def symbol_candidates(self, name: str, k: int, where: SearchFilter) -> Candidates:
        """Chunks that define (first) or use a code symbol."""
        ...

    # --- embedding space --------------------------------------------------------------------------------------------

    async def ensure_embedding_space(self, model: str, dimension: int) -> None:
        """Record the embedding model on first use; refuse vectors of another model or dimension."""
        ...

    async def reset_embedding_space(self) -> int:
        """Forget every stored vector and the recorded model; returns how many chunks now need embedding."""
        ...

    async def chunks_missing_vectors(self, limit: int) -> list[tuple[int, str, str]]:
        """(id, context, text) of chunks without a dense vector."""
        ...

    async def set_vectors(self, ids: Sequence[int], vectors: Sequence[np.ndarray]) -> None:
        """Store dense vectors for existing chunks."""
        ...


class Directory(Protocol):
    """What the protocol's resources and completions browse: listings in id order, the change log, suggestions."""

    async def collections_after(self, after_id: int, limit: int) -> list[CollectionListing]:
        """Collections with an id above ``after_id``, in id order, with their page counts."""
        ...

    async def pages_after(self, after_id: int, limit: int, collection: str | None = None) -> list[PageListing]:
        """Pages with an id above ``after_id`` (of one collection, or all), in id order."""
        ...

    async def collection_exists(self, name: str) -> bool:
        """Whether a collection of this name exists."""
        ...

    async def last_change_id(self) -> int:
        """The newest change log id (0 when the log is empty)."""
        ...

    async def changes_after(self, after_id: int, limit: int) -> list[ChangeEvent]:
        """Change log rows with an id above ``after_id``, oldest first."""
        ...

    async def suggest_collections(self, prefix: str, limit: int) -> Suggestions:
        """Collection names starting with ``prefix``."""
        ...

    async def suggest_versions(self, prefix: str, collection: str | None, limit: int) -> Suggestions:
        """Documentation version labels starting with ``prefix``."""
        ...

    async def suggest_urls(self, prefix: str, collection: str | None, limit: int) -> Suggestions:
        """Indexed page URLs starting with ``prefix``."""
        ...

    async def suggest_url_prefixes(self, prefix: str, collection: str | None, limit: int) -> Suggestions:
        """Prefixes of indexed URLs one step (site, folder or page) longer than ``prefix``."""
        ...

    async def suggest_job_ids(self, prefix: str, limit: int) -> Suggestions:
        """Crawl job ids starting with ``prefix``, newest first."""
        ...


class VectorIndex(Protocol):
    """Where chunks are searched by vector and by term, one search leg at a time (the retriever fuses them)."""

    keeps_sparse_postings: bool  # SPLADE vectors are catalog postings, written in the page's transaction
    # Holds its own copy of the vectors: entries are written first under reserved chunk ids, deleted after their
    # chunks leave the catalog, and can drift from it (`repair`).
    outside_catalog: bool

    @property
    def connected(self) -> bool:
        """False while an index with its own connection is closed."""
        ...

    async def open(self) -> None:
        """Connect (an index inside the catalog's database has nothing to open)."""
        ...

    async def aclose(self) -> None:
        """Disconnect."""
        ...

    async def ping(self) -> None:
        """Raise StoreError when the index does not answer."""
        ...

    async def health(self) -> dict[str, dict[str, Any]]:
        """Health components of its own, by name (none where the catalog's database is the index)."""
        ...

    async def ensure_embedding_space(self, dimension: int) -> None:
        """Prepare for vectors of this dimension (the catalog has checked the model)."""
        ...

    async def drop_embedding_space(self) -> None:
        """Drop every vector ahead of a re-embed with another model."""
        ...

    async def upsert(self, entries: Sequence[ChunkEntry]) -> None:
        """Write chunks' entries (idempotent)."""
        ...

    async def refresh(self, ids: Sequence[int]) -> None:
        """Rewrite these chunks' entries from the catalog (after their vectors changed there)."""
        ...

    async def delete(self, ids: Sequence[int]) -> None:
        """Forget chunks that left the catalog; a failure leaves orphans for `repair`, it never raises."""
        ...

    async def clear(self) -> None:
        """Delete every entry (with `Catalog.truncate_all`)."""
        ...

    async def chunks_missing_sparse(self, limit: int) -> list[tuple[int, str, str]]:
        """(id, context, text) of chunks stored without a SPLADE vector (SPLADE was down then)."""
        ...

    async def set_sparse(self, ids: Sequence[int], vectors: Sequence[SparseVec]) -> int:
        """Add back-filled SPLADE vectors; returns how many chunks got one."""
        ...

    async def dense_candidates(self, vector: np.ndarray, k: int, where: SearchFilter) -> Candidates:
        """Nearest chunks by cosine similarity."""
        ...

    async def lexical_candidates(self, query: str, k: int, where: SearchFilter) -> Candidates:
        """Chunks matching the query's words, best ranked first."""
        ...

    async def sparse_candidates(self, query: SparseVec, k: int, where: SearchFilter) -> Candidates:
        """Chunks by SPLADE dot product with the query."""
        ...

    async def repair(self, *, dry_run: bool = False) -> RepairReport:
        """Compare entries with the catalog's chunks; unless dry_run, fix the drift (only `outside_catalog` drifts)."""
        ...


class Store(Protocol):
    """The one object callers hold: the catalog, the index, and the operations that must keep the two in step."""

    catalog: Catalog
    index: VectorIndex

    async def open(self) -> None:
        """Connect the index."""
        ...

    async def aclose(self) -> None:
        """Disconnect the index."""
        ...

    async def ping(self) -> None:
        """Raise StoreError when the catalog or the index does not answer."""
        ...

    async def ensure_embedding_space(self, model: str, dimension: int) -> None:
        """Record (or check) the embedding model and prepare the index for its vectors."""
        ...

    async def reset_embedding_space(self, model: str, dimension: int) -> int:
        """Forget every vector and record a new model; returns how many chunks now need embedding."""
        ...

    async def replace_page(
        self,
        collection: str,
        page: PageRecord,
        chunks: Sequence[Chunk],
        vectors: Sequence[np.ndarray],
        sparse: Sequence[SparseVec] | None = None,
        symbols: Sequence[Sequence[Symbol]] | None = None,
    ) -> int:
        """Write a page and all its chunks atomically, replacing its previous version; returns the page id."""
        ...

    async def set_vectors(self, ids: Sequence[int], vectors: Sequence[np.ndarray]) -> None:
        """Store re-embedded vectors in the catalog and the index."""
        ...

    async def delete_page(self, page_id: int) -> None:
        """Remove a page with its chunks and their vectors."""
        ...

    async def delete_source(self, collection: str, domain: str | None = None, url_prefix: str | None = None) -> int:
        """Delete a collection's pages (all, of one domain, or under a URL prefix); returns pages deleted."""
        ...

    async def truncate_all(self) -> None:
        """Delete everything in the index and the catalog (tests and `db reset`)."""
        ...
