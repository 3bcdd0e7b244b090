"""The PostgreSQL catalog: pages, chunks with their text and dense vectors, symbols, and the embedding model in use."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import psycopg
from psycopg.rows import dict_row

from mcp_web_ingest.errors import SchemaMismatchError, StoreError
from mcp_web_ingest.models import Chunk, Provenance, SparseVec, Symbol, code_share
from mcp_web_ingest.storage.db import Database
from mcp_web_ingest.storage.postgres.changes import read_changes, record_write
from mcp_web_ingest.storage.postgres.documents import read_document, write_sections
from mcp_web_ingest.storage.postgres.postings import (
    copy_chunks,
    copy_lexical_postings,
    copy_postings,
    copy_symbols,
    lexical_vectors,
)
from mcp_web_ingest.storage.postgres.sources import SourcesMixin, collection_id
from mcp_web_ingest.storage.records import (
    ChunkEntry,
    ChunkPage,
    PageChange,
    PageRecord,
    SearchFilter,
    StoredChunk,
    StoredDocument,
    StoredPage,
    WrittenPage,
    search_filter_sql,
    translate_errors,
)

EMBEDDING_LOCK = 727275  # advisory lock serialising changes of the embedding space between processes


def hnsw_index_name(dimension: int) -> str:
    """The pgvector HNSW index over chunk vectors of this dimension."""
    return f"chunks_embedding_hnsw_{int(dimension)}"


def _as_array(value: object) -> np.ndarray:
    """A pgvector value (Vector, or an array already) as a numpy array."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value)


@translate_errors
class PostgresCatalog(SourcesMixin):
    """Everything about pages and chunks except how they are searched by vector (see the VectorIndex adapters)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def ping(self) -> None:
        """Raise StoreError when PostgreSQL does not answer."""
        try:
            async with self.db.pool.connection(timeout=5) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:
            raise StoreError(f"Database unreachable: {exc}") from exc

    async def counts(self) -> dict[str, int]:
        """Numbers of collections, pages and chunks."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM collections), (SELECT count(*) FROM pages), (SELECT count(*) FROM chunks)"
            )
            row = await cur.fetchone()
        assert row is not None
        return {"collections": int(row[0]), "pages": int(row[1]), "chunks": int(row[2])}

    # --- embedding space --------------------------------------------------------------------------------------------

    async def ensure_embedding_space(self, model: str, dimension: int) -> None:
        """Record the embedding model on first use; refuse to mix vectors of another model or dimension."""
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (EMBEDDING_LOCK,))
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

    async def reset_embedding_space(self) -> int:
        """Forget stored vectors and the model; returns how many chunks now need embedding.

        An HNSW index over the old vectors goes with them: it would refuse vectors of another dimension.
        """
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (EMBEDDING_LOCK,))
            old = await (await conn.execute("SELECT value FROM index_meta WHERE key='embedding_dimension'")).fetchone()
            if old:
                await conn.execute(f"DROP INDEX IF EXISTS {hnsw_index_name(int(old[0]))}")
            await conn.execute("UPDATE chunks SET embedding = NULL")
            await conn.execute("DELETE FROM index_meta WHERE key IN ('embedding_model', 'embedding_dimension')")
            count = (await (await conn.execute("SELECT count(*) FROM chunks")).fetchone())[0]
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

    # --- pages ------------------------------------------------------------------------------------------------------

    async def get_page(self, collection: str, url: str) -> StoredPage | None:
        """The stored page of a collection with this URL, if any."""
        async with self.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT p.id, p.url, p.title, p.content_hash, p.chunk_count, p.pipeline, p.crawled_at, p.etag, "
                "p.last_modified, p.content_format, p.content_url FROM pages p "
                "JOIN collections c ON c.id = p.collection_id WHERE c.name = %s AND p.url = %s",
                (collection, url),
            )
            row = await cur.fetchone()
        return StoredPage(**row) if row else None

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
        """Upsert the page row and replace its chunks, symbols and postings in one transaction.

        chunk_ids: ids reserved beforehand (an index outside the catalog wrote its entries under them first).
        """
        # Tokenising and stemming take ~0.4 ms a chunk: off the event loop, and before the transaction holds a lock.
        lexical = await asyncio.to_thread(lexical_vectors, [(c.section_path, c.text) for c in chunks])
        try:
            async with self.db.pool.connection() as conn, conn.transaction():
                return await self._write_page(
                    conn, collection, page, chunks, vectors, symbols, postings, chunk_ids, lexical
                )
        except psycopg.Error as exc:
            raise StoreError(f"Storing {page.url} failed; the previous version is unchanged: {exc}") from exc

    async def _write_page(
        self,
        conn: psycopg.AsyncConnection,
        collection: str,
        page: PageRecord,
        chunks: Sequence[Chunk],
        vectors: Sequence[np.ndarray],
        symbols: Sequence[Sequence[Symbol]] | None,
        postings: Sequence[SparseVec] | None,
        chunk_ids: Sequence[int] | None,
        lexical: Sequence[SparseVec],
    ) -> WrittenPage:
        collection_key = await collection_id(conn, collection)
        cur = await conn.execute(
            "SELECT p.title FROM pages p WHERE p.collection_id = %s AND p.url = %s", (collection_key, page.url)
        )
        before = await cur.fetchone()
        cur = await conn.execute(
            """
            INSERT INTO pages (collection_id, url, final_url, canonical_url, domain, title, description,
                               language, content_hash, etag, last_modified, http_status, pipeline, chunk_count,
                               code_share, content_format, content_url, version, version_source)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (collection_id, url) DO UPDATE SET
                final_url = EXCLUDED.final_url, canonical_url = EXCLUDED.canonical_url,
                domain = EXCLUDED.domain, title = EXCLUDED.title, description = EXCLUDED.description,
                language = EXCLUDED.language, content_hash = EXCLUDED.content_hash, etag = EXCLUDED.etag,
                last_modified = EXCLUDED.last_modified, http_status = EXCLUDED.http_status,
                pipeline = EXCLUDED.pipeline, chunk_count = EXCLUDED.chunk_count, code_share = EXCLUDED.code_share,
                content_format = EXCLUDED.content_format, content_url = EXCLUDED.content_url,
                -- a version found in the URL does not replace one the caller gave before
                version = CASE WHEN EXCLUDED.version_source = 'given' OR pages.version_source IS DISTINCT FROM 'given'
                               THEN EXCLUDED.version ELSE pages.version END,
                version_source = CASE WHEN EXCLUDED.version_source = 'given'
                                           OR pages.version_source IS DISTINCT FROM 'given'
                                      THEN EXCLUDED.version_source ELSE pages.version_source END,
                crawled_at = now(), indexed_at = now()
            RETURNING id
            """,
            (
                collection_key,
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
                code_share([c.text for c in chunks]),
                page.content_format,
                page.content_url,
                page.version,
                page.version_source,
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        page_id = int(row[0])
        cur = await conn.execute(
            "DELETE FROM chunks WHERE page_id = %s RETURNING id, section_path, anchor, content_hash", (page_id,)
        )
        old_chunks = await cur.fetchall()
        replaced = tuple(int(r[0]) for r in old_chunks)
        old = None if before is None else [(path, anchor, h) for _, path, anchor, h in old_chunks]
        await record_write(conn, collection_key, page.url, page.title, old, before[0] if before else "", chunks)
        await copy_chunks(conn, page_id, page.pipeline, chunks, vectors, chunk_ids)
        await write_sections(conn, page_id, page.sections)
        cur = await conn.execute("SELECT ordinal, id FROM chunks WHERE page_id = %s", (page_id,))
        ids: dict[int, int] = dict(await cur.fetchall())
        # The section path starts with the page title (the chunker puts it there), so title words count as headings.
        await copy_lexical_postings(
            conn, [(ids[c.ordinal], collection_key, vec) for c, vec in zip(chunks, lexical, strict=True)]
        )
        if postings is not None or symbols:
            if postings is not None:
                await copy_postings(conn, [(ids[i], vec) for i, vec in enumerate(postings)])
                await conn.execute("UPDATE chunks SET has_sparse = true WHERE page_id = %s", (page_id,))
            if symbols:
                await copy_symbols(conn, ids, symbols)
        return WrittenPage(page_id, replaced)

    # --- chunks -----------------------------------------------------------------------------------------------------

    async def reserve_chunk_ids(self, count: int) -> list[int]:
        """Chunk ids taken from the sequence ahead of a write."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT nextval(pg_get_serial_sequence('chunks', 'id')) FROM generate_series(1, %s)", (count,)
            )
            return [int(r[0]) for r in await cur.fetchall()]

    async def chunk_pages(self, ids: Sequence[int]) -> dict[int, ChunkPage]:
        """The page of each chunk, by chunk id (chunks deleted meanwhile are left out)."""
        if not ids:
            return {}
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.id, c.page_id, p.code_share FROM chunks c JOIN pages p ON p.id = c.page_id "
                "WHERE c.id = ANY(%s)",
                (list(ids),),
            )
            return {int(i): ChunkPage(int(p), float(share)) for i, p, share in await cur.fetchall()}

    async def read_document(
        self, *, url: str | None = None, page_id: int | None = None, collection: str | None = None
    ) -> StoredDocument | None:
        """A stored page's markdown sections, by id or by URL (see documents.read_document)."""
        async with self.db.pool.connection() as conn:
            return await read_document(conn, url=url, page_id=page_id, collection=collection)

    async def changes_since(self, collection: str | None, url_prefix: str | None, since: datetime) -> list[PageChange]:
        """Every logged page change since ``since`` (of one collection, under a URL prefix), oldest first."""
        async with self.db.pool.connection() as conn:
            return await read_changes(conn, collection, url_prefix, since)

    async def get_chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        """Chunks with their page data, by id."""
        if not ids:
            return {}
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.id, c.page_id, p.url, p.title, co.name, c.section_path, c.anchor, c.text, c.content_hash, "
                "p.indexed_at, p.crawled_at, p.last_modified, p.content_hash, p.content_format, p.version, "
                "EXISTS (SELECT 1 FROM refresh_schedules s WHERE s.collection_id = p.collection_id "
                "AND starts_with(p.url, s.url_prefix) AND p.crawled_at < now() - make_interval(secs => s.interval_s)) "
                "FROM chunks c JOIN pages p ON p.id = c.page_id JOIN collections co ON co.id = p.collection_id "
                "WHERE c.id = ANY(%s)",
                (list(ids),),
            )
            rows = await cur.fetchall()
        return {
            int(r[0]): StoredChunk(
                int(r[0]), int(r[1]), r[2], r[3], r[4], tuple(r[5] or ()), r[6], r[7], r[8], Provenance(*r[9:16])
            )
            for r in rows
        }

    async def vectors_by_hash(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of chunk texts by content hash, from any page of the index (one model per index), so a
        text already embedded anywhere (an unchanged chunk, boilerplate, another collection's copy) is not again."""
        if not hashes:
            return {}
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT ON (content_hash) content_hash, embedding FROM chunks "
                "WHERE content_hash = ANY(%s) AND embedding IS NOT NULL",
                (list(set(hashes)),),
            )
            return {h: _as_array(v) for h, v in await cur.fetchall()}

    async def chunk_entries(self, ids: Sequence[int]) -> list[ChunkEntry]:
        """Index entries rebuilt from the rows: dense vector and text from the chunk, SPLADE from its postings."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.id, co.name, p.url, p.domain, c.context, c.text, c.embedding, "
                "(SELECT array_agg(s.term ORDER BY s.term) FROM chunk_sparse_postings s WHERE s.chunk_id = c.id), "
                "(SELECT array_agg(s.weight ORDER BY s.term) FROM chunk_sparse_postings s WHERE s.chunk_id = c.id) "
                "FROM chunks c JOIN pages p ON p.id = c.page_id JOIN collections co ON co.id = p.collection_id "
                "WHERE c.id = ANY(%s) AND c.embedding IS NOT NULL",
                (list(ids),),
            )
            rows = await cur.fetchall()
        return [
            ChunkEntry(
                int(cid),
                coll,
                url,
                domain,
                context,
                text,
                _as_array(emb),
                SparseVec(tuple(terms), tuple(weights), 2**31) if terms else None,
            )
            for cid, coll, url, domain, context, text, emb, terms, weights in rows
        ]

    async def chunk_texts(self, ids: Sequence[int]) -> list[tuple[int, str, str]]:
        """(id, context, text) of those of these chunks that exist, by id."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, context, text FROM chunks WHERE id = ANY(%s) ORDER BY id", (list(ids),)
            )
            return [(r[0], r[1], r[2]) for r in await cur.fetchall()]

    async def chunk_urls(self) -> dict[int, str]:
        """Every chunk's id with its page URL."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute("SELECT c.id, p.url FROM chunks c JOIN pages p ON p.id = c.page_id")
            return {int(i): str(u) for i, u in await cur.fetchall()}

    async def chunk_ids_matching(self, where: SearchFilter) -> list[int]:
        """Ids of the chunks a search filter admits."""
        sql, params = search_filter_sql(where)
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT c.id FROM chunks c JOIN pages p ON p.id = c.page_id WHERE true{sql}", params
            )
            return [int(r[0]) for r in await cur.fetchall()]

    async def symbol_candidates(self, name: str, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Chunks that define (first, exact names before suffixes) or use a symbol; score = 4 - tier."""
        filter_sql, params = search_filter_sql(where)
        sql = (
            "SELECT s.chunk_id, 4 - s.tier FROM (SELECT chunk_id, min(role * 2 + (NOT exact)::int) AS tier "
            "FROM chunk_symbols WHERE key = lower(%s) GROUP BY chunk_id) s JOIN chunks c ON c.id = s.chunk_id "
            f"JOIN pages p ON p.id = c.page_id WHERE true{filter_sql} ORDER BY s.tier, s.chunk_id LIMIT %s"
        )
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(sql, [name, *params, k])
            return [(int(i), float(s)) for i, s in await cur.fetchall()]
