"""The Store boundary and its PostgreSQL + pgvector implementation."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import PoolTimeout

from .db import Database
from .errors import InvalidInputError, SchemaMismatchError, StoreError
from .models import Chunk
from .sparse import SparseVec
from .symbols import Symbol, symbol_keys

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_collection(name: str | None) -> str:
    """A collection name, defaulting to 'default'; letters, digits, '.', '_' and '-' only."""
    if name is None or name == "":
        return "default"
    if not COLLECTION_NAME.match(name):
        raise InvalidInputError(
            f"Invalid collection name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class SearchFilter:
    """Restrictions applied to every retrieval leg."""

    collection: str | None = None
    url_prefix: str | None = None
    symbol: str | None = None  # only chunks defining or using this symbol


@dataclass(frozen=True)
class PageRecord:
    """What is stored about a page besides its chunks."""

    url: str
    title: str
    content_hash: str
    pipeline: str
    final_url: str | None = None
    canonical_url: str | None = None
    description: str | None = None
    language: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    http_status: int | None = None

    @property
    def domain(self) -> str:
        """Host of the URL, lower-case."""
        return (urlsplit(self.url).hostname or "").lower()


@dataclass(frozen=True)
class StoredPage:
    """A page row as read back."""

    id: int
    url: str
    title: str
    content_hash: str
    chunk_count: int
    pipeline: str
    crawled_at: datetime
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class StoredChunk:
    """A chunk row joined with its page, for building results."""

    id: int
    page_id: int
    url: str
    title: str
    collection: str
    section_path: tuple[str, ...]
    anchor: str | None
    text: str
    content_hash: str


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


def check_counts(chunks: Sequence[Chunk], vectors: Sequence[np.ndarray], sparse: Sequence[SparseVec] | None) -> None:
    """Refuse a write whose chunk, vector and sparse-vector lists do not line up."""
    if len(chunks) != len(vectors) or (sparse is not None and len(sparse) != len(chunks)):
        raise StoreError("Internal error: chunk and vector counts differ")


def _filter_sql(where: SearchFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if where.collection:
        clauses.append("p.collection_id = (SELECT id FROM collections WHERE name = %s)")
        params.append(where.collection)
    if where.url_prefix:
        escaped = where.url_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("p.url LIKE %s")
        params.append(escaped + "%")
    if where.symbol:
        clauses.append("c.id IN (SELECT chunk_id FROM chunk_symbols WHERE key = lower(%s))")
        params.append(where.symbol)
    return "".join(" AND " + c for c in clauses), params


def tsquery_text_is_strict(query: str) -> bool:
    """Whether the user wrote search operators (quotes, -exclusion) that must keep websearch semantics."""
    # A plain "or" needs no strict mode: the relaxed query ORs every word anyway, and strict mode would AND the rest.
    return '"' in query or re.search(r"(^|\s)-\w", query) is not None


def _translate_errors(cls: type) -> type:
    """Wrap every public coroutine of cls so database failures leave as StoreError (a restart, a lost connection)."""
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(fn):
            continue

        @functools.wraps(fn)
        async def wrapper(*args: Any, __fn: Any = fn, **kwargs: Any) -> Any:
            try:
                return await __fn(*args, **kwargs)
            except (psycopg.Error, PoolTimeout) as exc:
                raise StoreError(f"Database error ({type(exc).__name__}): {exc}; try again in a moment") from exc

        setattr(cls, name, wrapper)
    return cls


@_translate_errors
class PostgresStore:
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

    async def collection_id(self, conn: psycopg.AsyncConnection, name: str) -> int:
        """The id of a collection, creating it when new."""
        cur = await conn.execute(
            "INSERT INTO collections (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
            "RETURNING id",
            (name,),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

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

    async def _write_postings(
        self, conn: psycopg.AsyncConnection, page_id: int, ids: dict[int, int], sparse: Sequence[SparseVec]
    ) -> None:
        """COPY a page's SPLADE postings (ids maps chunk ordinal to id) and mark its chunks as having them."""
        await self._copy_postings(conn, [(ids[i], vec) for i, vec in enumerate(sparse)])
        await conn.execute("UPDATE chunks SET has_sparse = true WHERE page_id = %s", (page_id,))

    @staticmethod
    async def _copy_postings(conn: psycopg.AsyncConnection, rows: Sequence[tuple[int, SparseVec]]) -> None:
        async with (
            conn.cursor() as cur,
            cur.copy("COPY chunk_sparse_postings (term, chunk_id, weight) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["int4", "int8", "float4"])
            for chunk_id, vec in rows:
                for term, weight in zip(vec.indices, vec.values, strict=True):
                    if weight > 0:
                        await copy.write_row((term, chunk_id, weight))

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
            await self._copy_postings(conn, rows)
            await conn.execute("UPDATE chunks SET has_sparse = true WHERE id = ANY(%s)", ([i for i, _ in rows],))
        return len(rows)

    async def sparse_candidates(self, query: SparseVec, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Chunks by SPLADE dot product with the query (exact, over the postings), best first."""
        if not query.indices:
            return []
        filter_sql, params = _filter_sql(where)
        sql = (
            "SELECT s.chunk_id, s.score FROM (SELECT p.chunk_id, sum(p.weight * q.qw) AS score "
            "FROM unnest(%s::int[], %s::real[]) AS q(term, qw) JOIN chunk_sparse_postings p USING (term) "
            "GROUP BY p.chunk_id) s JOIN chunks c ON c.id = s.chunk_id JOIN pages p ON p.id = c.page_id "
            f"WHERE true{filter_sql} ORDER BY s.score DESC, s.chunk_id LIMIT %s"
        )
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(sql, [list(query.indices), list(query.values), *params, k])
            return [(int(i), float(s)) for i, s in await cur.fetchall()]

    @staticmethod
    async def _write_symbols(
        conn: psycopg.AsyncConnection, ids: dict[int, int], symbols: Sequence[Sequence[Symbol]]
    ) -> None:
        """COPY the page's chunk symbols, one row per lookup key (ids maps chunk ordinal to id)."""
        rows: set[tuple[int, str, int, bool, str, str, str]] = set()
        for ordinal, chunk_symbols in enumerate(symbols):
            for sym in chunk_symbols:
                full = sym.name.lower()
                role = 0 if sym.role == "defines" else 1
                for key in symbol_keys(sym.name):
                    rows.add((ids[ordinal], key, role, key == full, sym.name, sym.kind, sym.language))
        async with (
            conn.cursor() as c,
            c.copy(
                "COPY chunk_symbols (chunk_id, key, role, exact, name, kind, language) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "text", "int2", "bool", "text", "text", "text"])
            for row in rows:
                await copy.write_row(row)

    async def symbol_candidates(self, name: str, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Chunks that define (first, exact names before suffixes) or use a symbol; score = 4 - tier."""
        filter_sql, params = _filter_sql(where)
        sql = (
            "SELECT s.chunk_id, 4 - s.tier FROM (SELECT chunk_id, min(role * 2 + (NOT exact)::int) AS tier "
            "FROM chunk_symbols WHERE key = lower(%s) GROUP BY chunk_id) s JOIN chunks c ON c.id = s.chunk_id "
            f"JOIN pages p ON p.id = c.page_id WHERE true{filter_sql} ORDER BY s.tier, s.chunk_id LIMIT %s"
        )
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(sql, [name, *params, k])
            return [(int(i), float(s)) for i, s in await cur.fetchall()]

    async def touch_page(
        self, page_id: int, etag: str | None, last_modified: str | None, http_status: int, final_url: str
    ) -> None:
        """Record a fresh crawl of an unchanged page (time and validators) without touching its chunks."""
        async with self.db.pool.connection() as conn:
            await conn.execute(
                "UPDATE pages SET crawled_at = now(), etag = %s, last_modified = %s, http_status = %s, final_url = %s "
                "WHERE id = %s",
                (etag, last_modified, http_status, final_url, page_id),
            )

    async def find_page_by_hash(self, collection: str, content_hash: str, exclude_url: str) -> StoredPage | None:
        """Another page of the collection with exactly this content, if any."""
        async with self.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT p.id, p.url, p.title, p.content_hash, p.chunk_count, p.pipeline, p.crawled_at, p.etag, "
                "p.last_modified FROM pages p JOIN collections c ON c.id = p.collection_id "
                "WHERE c.name = %s AND p.content_hash = %s AND p.url <> %s ORDER BY p.id LIMIT 1",
                (collection, content_hash, exclude_url),
            )
            row = await cur.fetchone()
        return StoredPage(**row) if row else None

    async def dense_candidates(self, vector: np.ndarray, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Nearest chunks by cosine similarity (HNSW), best first."""
        dim = self.dimension
        if dim is None:
            raise StoreError("The embedding space is not initialised")
        filter_sql, params = _filter_sql(where)
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
        filter_sql, params = _filter_sql(where)
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

    async def ensure_collection(self, name: str) -> int:
        """The id of a collection, creating it when new."""
        async with self.db.pool.connection() as conn:
            return await self.collection_id(conn, name)

    async def page_urls(self, collection: str, url_prefix: str | None = None) -> list[str]:
        """URLs of a collection's stored pages, optionally under a prefix."""
        filter_sql, params = _filter_sql(SearchFilter(collection, url_prefix))
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(f"SELECT p.url FROM pages p WHERE true{filter_sql} ORDER BY p.id", params)
            return [str(r[0]) for r in await cur.fetchall()]

    async def delete_page(self, page_id: int) -> None:
        """Remove a page with its chunks and vectors."""
        async with self.db.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("DELETE FROM chunks WHERE page_id = %s RETURNING id", (page_id,))
            gone = [int(r[0]) for r in await cur.fetchall()]
            await conn.execute("DELETE FROM pages WHERE id = %s", (page_id,))
        await self.chunks_deleted(gone)

    async def chunks_deleted(self, ids: Sequence[int]) -> None:
        """Called after chunks left PostgreSQL; nothing to do here (the Qdrant store deletes their points)."""

    async def set_links(self, page_id: int, links: Sequence[str]) -> None:
        """Remember a page's outgoing links (a later 304 answer has no body to read them from)."""
        async with self.db.pool.connection() as conn:
            await conn.execute("UPDATE pages SET links = %s WHERE id = %s", (list(links), page_id))

    async def get_links(self, page_id: int) -> tuple[str, ...]:
        """The outgoing links stored for a page."""
        async with self.db.pool.connection() as conn:
            row = await (await conn.execute("SELECT links FROM pages WHERE id = %s", (page_id,))).fetchone()
        return tuple(row[0] or ()) if row else ()

    async def list_sources(self) -> list[dict[str, Any]]:
        """Pages, chunks and last crawl per collection and domain, with the state of the newest job there."""
        async with self.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                """
                SELECT c.name AS collection, p.domain, count(*) AS pages, sum(p.chunk_count) AS chunks,
                       max(p.crawled_at) AS last_crawled_at,
                       (SELECT j.state FROM crawl_jobs j WHERE j.collection_id = c.id
                          AND j.start_url LIKE p.domain_prefix || '%%' ORDER BY j.created_at DESC LIMIT 1)
                       AS last_job_state
                FROM (SELECT *, split_part(url, '/', 1) || '//' || split_part(url, '/', 3) AS domain_prefix
                      FROM pages) p
                JOIN collections c ON c.id = p.collection_id
                GROUP BY c.id, c.name, p.domain, p.domain_prefix ORDER BY c.name, p.domain
                """
            )
            rows = await cur.fetchall()
        return [{**r, "chunks": int(r["chunks"] or 0), "pages": int(r["pages"])} for r in rows]

    async def delete_source(self, collection: str, domain: str | None = None, url_prefix: str | None = None) -> int:
        """Delete a collection's pages (all, or of one domain, or under a URL prefix); returns pages deleted."""
        filter_sql, params = _filter_sql(SearchFilter(collection, url_prefix))
        if domain:
            filter_sql += " AND p.domain = %s"
            params.append(domain.lower())
        async with self.db.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                f"DELETE FROM chunks c USING pages p WHERE c.page_id = p.id{filter_sql} RETURNING c.id", params
            )
            gone = [int(r[0]) for r in await cur.fetchall()]
            cur = await conn.execute(f"DELETE FROM pages p WHERE true{filter_sql}", params)
            deleted = cur.rowcount
            if not domain and not url_prefix and collection != "default":
                await conn.execute("DELETE FROM collections WHERE name = %s", (collection,))
        await self.chunks_deleted(gone)
        return int(deleted)

    async def truncate_all(self) -> None:
        """Delete every page, chunk and collection except 'default' (tests and `db reset`)."""
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "TRUNCATE chunk_symbols, chunk_sparse_postings, chunks, pages, crawl_urls, crawl_jobs "
                "RESTART IDENTITY CASCADE"
            )
            await conn.execute("DELETE FROM collections WHERE name <> 'default'")
