"""The Store boundary and its PostgreSQL + pgvector implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import psycopg
from psycopg.rows import dict_row

from mcp_web_ingest.encoders.splade import SparseVec
from mcp_web_ingest.errors import SchemaMismatchError, StoreError
from mcp_web_ingest.ingest.symbols import Symbol
from mcp_web_ingest.models import Chunk
from mcp_web_ingest.storage.db import Database
from mcp_web_ingest.storage.postgres.postings import PostingsMixin
from mcp_web_ingest.storage.postgres.sources import SourcesMixin
from mcp_web_ingest.storage.records import (
    PageRecord,
    SearchFilter,
    StoredChunk,
    StoredPage,
    check_counts,
    search_filter_sql,
    translate_errors,
    tsquery_text_is_strict,
    validate_collection,
)

# Re-exported: the rest of the package and the tests import these from here.
__all__ = [
    "PageRecord",
    "PostgresStore",
    "SearchFilter",
    "Store",
    "StoredChunk",
    "StoredPage",
    "check_counts",
    "tsquery_text_is_strict",
    "validate_collection",
]


class Store(Protocol):
    """Persistence of pages and chunks, and candidate retrieval."""

    async def ensure_embedding_space(self, model: str, dimension: int) -> None: ...
    async def get_page(self, collection: str, url: str) -> StoredPage | None: ...
    async def chunk_vectors(self, page_id: int) -> dict[str, np.ndarray]: ...
    async def replace_page(
        self, collection: str, page: PageRecord, chunks: Sequence[Chunk], vectors: Sequence[np.ndarray]
    ) -> int: ...
    async def touch_page(
        self, page_id: int, etag: str | None, last_modified: str | None, http_status: int, final_url: str
    ) -> None: ...
    async def dense_candidates(self, vector: np.ndarray, k: int, where: SearchFilter) -> list[tuple[int, float]]: ...
    async def lexical_candidates(self, query: str, k: int, where: SearchFilter) -> list[tuple[int, float]]: ...
    async def get_chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]: ...
    async def counts(self) -> dict[str, int]: ...
    async def ping(self) -> None: ...


@translate_errors
class PostgresStore(SourcesMixin, PostingsMixin):
    """Pages, chunks, dense vectors (pgvector HNSW) and full text (tsvector GIN) in one PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dimension: int | None = None

    async def ping(self) -> None:
        """Raise StoreError when a store does not answer."""
        await self.ping_database()

    async def ping_database(self) -> None:
        """Raise StoreError when PostgreSQL does not answer."""
        try:
            async with self.db.pool.connection(timeout=5) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:
            raise StoreError(f"Database unreachable: {exc}") from exc

    async def ensure_embedding_space(self, model: str, dimension: int, *, hnsw: bool = True) -> None:
        """Record the embedding model on first use; refuse to mix vectors of another model or dimension.

        hnsw: build the pgvector index (the Qdrant store searches in Qdrant and keeps vectors here only as a record).
        """
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(727275)")
            rows = dict(await (await conn.execute("SELECT key, value FROM index_meta")).fetchall())
            stored_model, stored_dim = rows.get("embedding_model"), rows.get("embedding_dimension")
            if stored_model is None:
                await conn.execute(
                    "INSERT INTO index_meta (key, value) VALUES ('embedding_model', %s), ('embedding_dimension', %s)",
                    (model, str(dimension)),
                )
            elif stored_model != model or int(stored_dim or 0) != dimension:
                chunks = (await (await conn.execute("SELECT count(*) FROM chunks")).fetchone())[0]
                raise SchemaMismatchError(
                    f"The index holds {chunks} chunks embedded with {stored_model} ({stored_dim} dimensions), but the "
                    f"configured embedder is {model} ({dimension} dimensions). Vectors of different models cannot be "
                    f"mixed. Either set EMBEDDING_MODEL/EMBEDDING_PROVIDER back to match, or run "
                    f"`mcp-web-ingest reembed` to re-embed every stored chunk with the new model (no re-crawl needed)."
                )
            # HNSW needs a fixed dimension: index an expression cast to it.
            if hnsw:
                await conn.execute(
                    f"CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_{dimension} ON chunks "
                    f"USING hnsw ((embedding::vector({dimension})) vector_cosine_ops)"
                )
        self.dimension = dimension

    async def reset_embedding_space(self, model: str, dimension: int) -> int:
        """Forget stored vectors and record a new model; returns how many chunks now need embedding."""
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(727275)")
            old = await (await conn.execute("SELECT value FROM index_meta WHERE key='embedding_dimension'")).fetchone()
            if old:
                await conn.execute(f"DROP INDEX IF EXISTS chunks_embedding_hnsw_{int(old[0])}")
            await conn.execute("UPDATE chunks SET embedding = NULL")
            await conn.execute("DELETE FROM index_meta WHERE key IN ('embedding_model', 'embedding_dimension')")
            count = (await (await conn.execute("SELECT count(*) FROM chunks")).fetchone())[0]
        await self.ensure_embedding_space(model, dimension)
        return int(count)

    async def chunks_missing_vectors(self, limit: int) -> list[tuple[int, str, str]]:
        """(id, context, text) of chunks without a dense vector."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, context, text FROM chunks WHERE embedding IS NULL ORDER BY id LIMIT %s", (limit,)
            )
            return [(r[0], r[1], r[2]) for r in await cur.fetchall()]

    async def set_vectors(self, ids: Sequence[int], vectors: Sequence[np.ndarray]) -> None:
        """Store dense vectors for existing chunks."""
        async with self.db.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                "UPDATE chunks SET embedding = %s WHERE id = %s", [(v, i) for i, v in zip(ids, vectors, strict=True)]
            )

    async def get_page(self, collection: str, url: str) -> StoredPage | None:
        """The stored page of a collection with this URL, if any."""
        async with self.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT p.id, p.url, p.title, p.content_hash, p.chunk_count, p.pipeline, p.crawled_at, p.etag, "
                "p.last_modified FROM pages p "
                "JOIN collections c ON c.id = p.collection_id WHERE c.name = %s AND p.url = %s",
                (collection, url),
            )
            row = await cur.fetchone()
        return StoredPage(**row) if row else None

    async def chunk_vectors(self, page_id: int) -> dict[str, np.ndarray]:
        """Vectors of a page's current chunks by content hash, so unchanged chunks are not embedded again."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT content_hash, embedding FROM chunks WHERE page_id = %s AND embedding IS NOT NULL", (page_id,)
            )
            return {h: np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v) for h, v in await cur.fetchall()}

    async def replace_page(
        self,
        collection: str,
        page: PageRecord,
        chunks: Sequence[Chunk],
        vectors: Sequence[np.ndarray],
        sparse: Sequence[SparseVec] | None = None,
        symbols: Sequence[Sequence[Symbol]] | None = None,
    ) -> int:
        """Write a page and all its chunks (and SPLADE postings) in one transaction, replacing its previous version."""
        check_counts(chunks, vectors, sparse)
        try:
            async with self.db.pool.connection() as conn, conn.transaction():
                page_id, _ = await self._write_page(conn, collection, page, chunks, vectors, sparse, symbols)
        except psycopg.Error as exc:
            raise StoreError(f"Storing {page.url} failed; the previous version is unchanged: {exc}") from exc
        return page_id

    async def _write_page(
        self,
        conn: psycopg.AsyncConnection,
        collection: str,
        page: PageRecord,
        chunks: Sequence[Chunk],
        vectors: Sequence[np.ndarray],
        sparse: Sequence[SparseVec] | None = None,
        symbols: Sequence[Sequence[Symbol]] | None = None,
        *,
        chunk_ids: Sequence[int] | None = None,
        postings: bool = True,
    ) -> tuple[int, list[int]]:
        """Upsert the page row and replace its chunks inside the caller's transaction.

        chunk_ids: ids chosen beforehand (the Qdrant store writes points under them first); postings: store the
        SPLADE vectors as PostgreSQL postings. Returns the page id and the ids of the chunks it replaced.
        """
        collection_id = await self.collection_id(conn, collection)
        cur = await conn.execute(
            """
            INSERT INTO pages (collection_id, url, final_url, canonical_url, domain, title, description,
                               language, content_hash, etag, last_modified, http_status, pipeline, chunk_count)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (collection_id, url) DO UPDATE SET
                final_url = EXCLUDED.final_url, canonical_url = EXCLUDED.canonical_url,
                domain = EXCLUDED.domain, title = EXCLUDED.title, description = EXCLUDED.description,
                language = EXCLUDED.language, content_hash = EXCLUDED.content_hash, etag = EXCLUDED.etag,
                last_modified = EXCLUDED.last_modified, http_status = EXCLUDED.http_status,
                pipeline = EXCLUDED.pipeline, chunk_count = EXCLUDED.chunk_count,
                crawled_at = now(), indexed_at = now()
            RETURNING id
            """,
            (
                collection_id,
                page.url,
                page.final_url,
                page.canonical_url,
                page.domain,
                page.title,
                page.description,
                page.language,
                page.content_hash,
                page.etag,
                page.last_modified,
                page.http_status,
                page.pipeline,
                len(chunks),
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        page_id = int(row[0])
        cur = await conn.execute("DELETE FROM chunks WHERE page_id = %s RETURNING id", (page_id,))
        replaced = [int(r[0]) for r in await cur.fetchall()]
        columns = "page_id, ordinal, section_path, context, anchor, text, token_count, content_hash, pipeline, "
        columns += "embedding"
        types = ["int8", "int4", "text[]", "text", "text", "text", "int4", "text", "text", "vector"]
        if chunk_ids is not None:
            columns, types = "id, " + columns, ["int8", *types]
        async with (
            conn.cursor() as ccur,
            ccur.copy(f"COPY chunks ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.set_types(types)
            for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
                values = (
                    page_id,
                    chunk.ordinal,
                    list(chunk.section_path),
                    " › ".join(chunk.section_path),
                    chunk.anchor,
                    chunk.text,
                    chunk.token_count,
                    chunk.content_hash,
                    page.pipeline,
                    np.asarray(vector, dtype=np.float32),
                )
                await copy.write_row(values if chunk_ids is None else (chunk_ids[i], *values))
        if (sparse is not None and postings) or symbols:
            cur = await conn.execute("SELECT ordinal, id FROM chunks WHERE page_id = %s", (page_id,))
            ids: dict[int, int] = dict(await cur.fetchall())
            if sparse is not None and postings:
                await self._write_postings(conn, page_id, ids, sparse)
            if symbols:
                await self._write_symbols(conn, ids, symbols)
        return page_id, replaced

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
        """Chunks matching the query's words (PostgreSQL full text, English stemming), best ranked first."""
        filter_sql, params = search_filter_sql(where)
        # websearch_to_tsquery ANDs every word, which starves natural-language questions; unless the user wrote
        # operators, OR the words and let ranking reward chunks that match more of them.
        tsq = (
            "websearch_to_tsquery('english', %s)"
            if tsquery_text_is_strict(query)
            else "replace(websearch_to_tsquery('english', %s)::text, ' & ', ' | ')::tsquery"
        )
        sql = (
            f"WITH q AS (SELECT {tsq} AS q) "
            "SELECT c.id, ts_rank(c.tsv, q.q, 1) AS score FROM chunks c JOIN pages p ON p.id = c.page_id, q "
            f"WHERE q.q <> ''::tsquery AND c.tsv @@ q.q{filter_sql} ORDER BY score DESC, c.id LIMIT %s"
        )
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(sql, [query, *params, k])
            return [(int(i), float(s)) for i, s in await cur.fetchall()]

    async def get_chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        """Chunks with their page data, by id."""
        if not ids:
            return {}
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.id, c.page_id, p.url, p.title, co.name, c.section_path, c.anchor, c.text, c.content_hash "
                "FROM chunks c JOIN pages p ON p.id = c.page_id JOIN collections co ON co.id = p.collection_id "
                "WHERE c.id = ANY(%s)",
                (list(ids),),
            )
            rows = await cur.fetchall()
        return {
            int(r[0]): StoredChunk(int(r[0]), int(r[1]), r[2], r[3], r[4], tuple(r[5] or ()), r[6], r[7], r[8])
            for r in rows
        }

    async def counts(self) -> dict[str, int]:
        """Numbers of collections, pages and chunks."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM collections), (SELECT count(*) FROM pages), (SELECT count(*) FROM chunks)"
            )
            row = await cur.fetchone()
        assert row is not None
        return {"collections": int(row[0]), "pages": int(row[1]), "chunks": int(row[2])}
