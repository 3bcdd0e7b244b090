"""The pgvector + postings VectorIndex: search legs over the catalog's own tables in the same PostgreSQL database.

Dense: pgvector HNSW over the chunks' vectors. Lexical: the chunks' tsvector (GIN). SPLADE: exact dot products over
the chunk_sparse_postings table. The vectors are the catalog's rows, written in the page's transaction, so there is
nothing to write, delete or repair here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mcp_web_ingest.errors import StoreError
from mcp_web_ingest.models import SparseVec
from mcp_web_ingest.storage.db import Database
from mcp_web_ingest.storage.postgres.catalog import EMBEDDING_LOCK, hnsw_index_name
from mcp_web_ingest.storage.postgres.lexical import LexicalPostings
from mcp_web_ingest.storage.postgres.postings import copy_postings
from mcp_web_ingest.storage.records import (
    ChunkEntry,
    RepairReport,
    SearchFilter,
    search_filter_sql,
    translate_errors,
)


@translate_errors
class PgVectorIndex:
    """Dense (HNSW), lexical (BM25 postings) and SPLADE (postings) legs, fused by the retriever."""

    keeps_sparse_postings = True
    outside_catalog = False
    connected = True  # it uses the catalog's pool

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dimension: int | None = None
        self.lexical = LexicalPostings(db)

    async def open(self) -> None:
        """Write the BM25 postings of chunks stored before they existed (the catalog's pool serves the index)."""
        await self.lexical.backfill()

    async def aclose(self) -> None:
        """Nothing to close."""

    async def ping(self) -> None:
        """Nothing beyond the catalog's own ping: they share the database."""

    async def health(self) -> dict[str, dict[str, Any]]:
        """No component of its own: the database component covers it."""
        return {}

    async def ensure_embedding_space(self, dimension: int) -> None:
        """Build the HNSW index for this dimension if missing."""
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (EMBEDDING_LOCK,))
            # HNSW needs a fixed dimension: index an expression cast to it.
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(dimension)} ON chunks "
                f"USING hnsw ((embedding::vector({int(dimension)})) vector_cosine_ops)"
            )
        self.dimension = dimension

    async def drop_embedding_space(self) -> None:
        """Nothing here: the catalog drops the HNSW index together with the vectors it covers."""

    async def upsert(self, entries: Sequence[ChunkEntry]) -> None:
        """Nothing to write: the vectors are the catalog's chunk rows."""

    async def refresh(self, ids: Sequence[int]) -> None:
        """Nothing to rewrite: the catalog's rows are the index."""

    async def delete(self, ids: Sequence[int]) -> None:
        """Nothing to delete: postings and index entries go with their chunk rows."""

    async def clear(self) -> None:
        """Nothing to clear beyond the catalog's tables."""

    async def chunks_missing_sparse(self, limit: int) -> list[tuple[int, str, str]]:
        """(id, context, text) of chunks stored without SPLADE postings (SPLADE was down when they were written)."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, context, text FROM chunks WHERE NOT has_sparse ORDER BY id LIMIT %s", (limit,)
            )
            return [(r[0], r[1], r[2]) for r in await cur.fetchall()]

    async def set_sparse(self, ids: Sequence[int], vectors: Sequence[SparseVec]) -> int:
        """Store back-filled postings for chunks that still exist and still lack them; returns how many."""
        async with self.db.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT id FROM chunks WHERE id = ANY(%s) AND NOT has_sparse FOR UPDATE", (list(ids),)
            )
            live = {r[0] for r in await cur.fetchall()}
            rows = [(i, v) for i, v in zip(ids, vectors, strict=True) if i in live]
            await copy_postings(conn, rows)
            await conn.execute("UPDATE chunks SET has_sparse = true WHERE id = ANY(%s)", ([i for i, _ in rows],))
        return len(rows)

    async def dense_candidates(self, vector: np.ndarray, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Nearest chunks by cosine similarity (HNSW), best first."""
        dim = self.dimension
        if dim is None:
            raise StoreError("The embedding space is not initialised")
        filter_sql, params = search_filter_sql(where)
        sql = (
            f"SELECT c.id, 1 - (c.embedding::vector({dim}) <=> %s::vector({dim})) AS score "
            f"FROM chunks c JOIN pages p ON p.id = c.page_id WHERE c.embedding IS NOT NULL{filter_sql} "
            f"ORDER BY c.embedding::vector({dim}) <=> %s::vector({dim}) LIMIT %s"
        )
        vec = np.asarray(vector, dtype=np.float32)
        async with self.db.pool.connection() as conn, conn.transaction():
            # ef_search bounds how many results HNSW can return; iterative scans keep filtered queries complete.
            await conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, min(k, 1000))}")
            await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cur = await conn.execute(sql, [vec, *params, vec, k])
            rows = await cur.fetchall()
        return sorted(((int(i), float(s)) for i, s in rows), key=lambda r: -r[1])

    async def lexical_candidates(self, query: str, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Chunks by BM25 over their text and headings (code-aware terms), best first."""
        return await self.lexical.candidates(query, k, where)

    async def sparse_candidates(self, query: SparseVec, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Chunks by SPLADE dot product with the query (exact, over the postings), best first."""
        if not query.indices:
            return []
        filter_sql, params = search_filter_sql(where)
        sql = (
            "SELECT s.chunk_id, s.score FROM (SELECT p.chunk_id, sum(p.weight * q.qw) AS score "
            "FROM unnest(%s::int[], %s::real[]) AS q(term, qw) JOIN chunk_sparse_postings p USING (term) "
            "GROUP BY p.chunk_id) s JOIN chunks c ON c.id = s.chunk_id JOIN pages p ON p.id = c.page_id "
            f"WHERE true{filter_sql} ORDER BY s.score DESC, s.chunk_id LIMIT %s"
        )
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(sql, [list(query.indices), list(query.values), *params, k])
            return [(int(i), float(s)) for i, s in await cur.fetchall()]

    async def repair(self, *, dry_run: bool = False) -> RepairReport:
        """Always in sync: the vectors are the catalog's own rows."""
        return RepairReport()
