"""The Qdrant store: PostgreSQL keeps pages, chunk text, provenance and jobs; Qdrant searches dense and sparse vectors.

Consistency: a chunk's point id is its PostgreSQL chunk id. A page write reserves the ids, upserts the points
(idempotent), then commits the rows, then deletes the points of the chunks it replaced. A crash between the steps
leaves only points without rows, which search ignores (results are read back from PostgreSQL) and `repair` deletes;
PostgreSQL keeps each chunk's dense vector, so `repair` can also restore missing points without embedding anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.lexical import document_vector, query_vector
from mcp_web_ingest.encoders.splade import SparseVec
from mcp_web_ingest.errors import SchemaMismatchError, StoreError, VectorStoreError
from mcp_web_ingest.ingest.symbols import Symbol
from mcp_web_ingest.models import Chunk
from mcp_web_ingest.storage.db import Database
from mcp_web_ingest.storage.postgres.store import PostgresStore
from mcp_web_ingest.storage.qdrant import repair as qdrant_repair
from mcp_web_ingest.storage.qdrant.collection import (
    BATCH,
    DENSE,
    LEXICAL,
    SPLADE,
    collection_options,
    ensure_qdrant_collection,
)
from mcp_web_ingest.storage.qdrant.connection import close_client, open_client
from mcp_web_ingest.storage.qdrant.repair import RepairReport
from mcp_web_ingest.storage.records import PageRecord, SearchFilter, check_counts, search_filter_sql, translate_errors

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient
    from qdrant_client import models as qm

log = logging.getLogger(__name__)

# collection_options is re-exported: the tests import it from here.
__all__ = ["QdrantStore", "RepairReport", "collection_options"]


def _redact(url: str) -> str:
    return url.split("@", 1)[-1] if "://" in url else url


@translate_errors
class QdrantStore(PostgresStore):
    """PostgresStore whose vector legs (dense, lexical, SPLADE) and hybrid fusion run in one Qdrant collection."""

    fuses_server_side = True
    tracks_deleted_chunks = True

    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__(db)
        self.settings = settings
        self.location = settings.qdrant_url or ":memory:"
        self.local = not self.location.startswith(("http://", "https://"))
        self.name = settings.qdrant_collection
        self._client: AsyncQdrantClient | None = None
        # What the server's RRF accepts: 2 = k and weights (Qdrant >= 1.17), 1 = k (1.16), 0 = plain RRF (1.10).
        self._rrf_level = 2
        self._collection_ready = False  # checked or created; retried on first use when Qdrant was down at start

    # --- connection ------------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (server) or open the local store; local ones are shared within the process, like the server."""
        self._client = open_client(self.settings, self.location, local=self.local)

    async def aclose(self) -> None:
        """Close the client (a shared local one when its last user leaves)."""
        client, self._client = self._client, None
        if client is not None:
            await close_client(client, self.location, local=self.local)

    @contextlib.asynccontextmanager
    async def _qdrant(self, what: str) -> AsyncIterator[AsyncQdrantClient]:
        """The client, with every failure translated into a VectorStoreError that says what to do."""
        if self._client is None:
            raise VectorStoreError(f"Qdrant ({_redact(self.location)}) is not connected; {what} is not possible now")
        try:
            if not self._collection_ready and self.dimension is not None:
                await self._ensure_collection(self._client, self.dimension)
            yield self._client
        except StoreError:
            raise
        except Exception as exc:
            raise VectorStoreError(
                f"Qdrant ({_redact(self.location)}) failed during {what}: {type(exc).__name__}: {exc}. "
                "Check that it is running and reachable; pages stay in PostgreSQL and nothing is half-stored"
            ) from exc

    async def ping(self) -> None:
        """Raise StoreError when PostgreSQL or Qdrant does not answer."""
        await self.ping_database()
        async with self._qdrant("a health check") as client:
            await client.get_collections()

    async def point_count(self) -> int:
        """Points in the collection (exact count)."""
        async with self._qdrant("counting points") as client:
            return int((await client.count(self.name, exact=True)).count)

    # --- collection ------------------------------------------------------------------------------------------------

    async def ensure_embedding_space(self, model: str, dimension: int, *, hnsw: bool = False) -> None:
        """Record the model in PostgreSQL (no pgvector index needed) and create the Qdrant collection if missing.

        Qdrant being down at start is not fatal: the collection is checked on first use, and health says it is down.
        """
        await super().ensure_embedding_space(model, dimension, hnsw=hnsw)
        self._collection_ready = False
        try:
            async with self._qdrant("checking the collection"):
                pass
        except SchemaMismatchError:
            raise
        except VectorStoreError as exc:
            log.warning("Qdrant is unreachable at start; search and indexing wait for it: %s", exc)

    async def _ensure_collection(self, client: AsyncQdrantClient, dimension: int) -> None:
        if await ensure_qdrant_collection(client, self.name, dimension, self.settings, local=self.local):
            log.info("created Qdrant collection %s (%d dimensions)", self.name, dimension)
        self._collection_ready = True

    async def reset_embedding_space(self, model: str, dimension: int) -> int:
        """Drop the collection with the old model's vectors; the PostgreSQL part is reset as usual."""
        async with self._qdrant("dropping the collection") as client:
            await client.delete_collection(self.name)
        self._collection_ready = False
        return await super().reset_embedding_space(model, dimension)

    # --- writes ----------------------------------------------------------------------------------------------------

    def _point(
        self,
        chunk_id: int,
        collection: str,
        url: str,
        domain: str,
        context: str,
        text: str,
        vector: Any,
        splade: SparseVec | None,
    ) -> qm.PointStruct:
        from qdrant_client import models as qm

        lexical = document_vector(f"{context}\n{text}")
        vectors: dict[str, Any] = {
            DENSE: np.asarray(vector, dtype=np.float32).tolist(),
            LEXICAL: qm.SparseVector(indices=list(lexical.indices), values=list(lexical.values)),
        }
        if splade is not None:
            vectors[SPLADE] = qm.SparseVector(indices=list(splade.indices), values=list(splade.values))
        payload = {"collection": collection, "url": url, "domain": domain, "has_splade": splade is not None}
        return qm.PointStruct(id=chunk_id, vector=vectors, payload=payload)

    async def _upsert(self, points: Sequence[qm.PointStruct]) -> None:
        async with self._qdrant("writing vectors") as client:
            for start in range(0, len(points), BATCH):
                await client.upsert(self.name, points=list(points[start : start + BATCH]), wait=True)

    async def chunks_deleted(self, ids: Sequence[int]) -> None:
        """Delete the points of chunks that left PostgreSQL; a failure only leaves orphans that `repair` removes."""
        from qdrant_client import models as qm

        try:
            async with self._qdrant("deleting vectors") as client:
                for start in range(0, len(ids), 1000):
                    selector = qm.PointIdsList(points=list(ids[start : start + 1000]))
                    await client.delete(self.name, points_selector=selector, wait=True)
        except VectorStoreError as exc:
            log.warning("%d stale Qdrant points left behind (run `mcp-web-ingest repair`): %s", len(ids), exc)

    async def replace_page(
        self,
        collection: str,
        page: PageRecord,
        chunks: Sequence[Chunk],
        vectors: Sequence[np.ndarray],
        sparse: Sequence[SparseVec] | None = None,
        symbols: Sequence[Sequence[Symbol]] | None = None,
    ) -> int:
        """Points first under reserved ids, then the rows in one transaction, then stale points go."""
        check_counts(chunks, vectors, sparse)
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT nextval(pg_get_serial_sequence('chunks', 'id')) FROM generate_series(1, %s)", (len(chunks),)
            )
            ids = [int(r[0]) for r in await cur.fetchall()]
        await self._upsert(
            [
                self._point(
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
            async with self.db.pool.connection() as conn, conn.transaction():
                page_id, replaced = await self._write_page(
                    conn, collection, page, chunks, vectors, sparse, symbols, chunk_ids=ids, postings=False
                )
        except psycopg.Error as exc:
            await self.chunks_deleted(ids)
            raise StoreError(f"Storing {page.url} failed; the previous version is unchanged: {exc}") from exc
        except BaseException:
            await asyncio.shield(self.chunks_deleted(ids))
            raise
        await self.chunks_deleted(replaced)
        return page_id

    async def _points_from_rows(self, ids: Sequence[int]) -> list[qm.PointStruct]:
        """Points rebuilt from PostgreSQL: dense vector and text from the chunk, SPLADE from its postings if any."""
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
        points = []
        for cid, coll, url, domain, context, text, emb, terms, weights in rows:
            splade = SparseVec(tuple(terms), tuple(weights), 2**31) if terms else None
            vector = emb.to_numpy() if hasattr(emb, "to_numpy") else emb
            points.append(self._point(int(cid), coll, url, domain, context, text, vector, splade))
        return points

    async def set_vectors(self, ids: Sequence[int], vectors: Sequence[np.ndarray]) -> None:
        """Store re-embedded vectors in PostgreSQL and (re)write the chunks' points."""
        await super().set_vectors(ids, vectors)
        await self._upsert(await self._points_from_rows(ids))

    async def chunks_missing_sparse(self, limit: int) -> list[tuple[int, str, str]]:
        """(id, context, text) of chunks whose point has no SPLADE vector yet."""
        from qdrant_client import models as qm

        async with self._qdrant("finding points without SPLADE vectors") as client:
            points, _ = await client.scroll(
                self.name,
                scroll_filter=qm.Filter(must=[qm.FieldCondition(key="has_splade", match=qm.MatchValue(value=False))]),
                limit=limit,
                with_payload=False,
            )
        ids = [int(p.id) for p in points]
        async with self.db.pool.connection() as conn:
            cur = await conn.execute("SELECT id, context, text FROM chunks WHERE id = ANY(%s) ORDER BY id", (ids,))
            rows = [(r[0], r[1], r[2]) for r in await cur.fetchall()]
        if len(rows) < len(ids):  # points of deleted chunks: drop them, or the back-fill would see them forever
            await self.chunks_deleted(sorted(set(ids) - {r[0] for r in rows}))
        return rows

    async def set_sparse(self, ids: Sequence[int], vectors: Sequence[SparseVec]) -> int:
        """Add back-filled SPLADE vectors to existing points."""
        from qdrant_client import models as qm

        async with self._qdrant("writing SPLADE vectors") as client:
            points = [
                qm.PointVectors(id=i, vector={SPLADE: qm.SparseVector(indices=list(v.indices), values=list(v.values))})
                for i, v in zip(ids, vectors, strict=True)
            ]
            await client.update_vectors(self.name, points=points, wait=True)
            await client.set_payload(self.name, payload={"has_splade": True}, points=list(ids), wait=True)
        return len(ids)

    async def truncate_all(self) -> None:
        """Delete everything in both stores."""
        from qdrant_client import models as qm

        async with self._qdrant("clearing the collection") as client:
            if await client.collection_exists(self.name):
                await client.delete(self.name, points_selector=qm.FilterSelector(filter=qm.Filter()), wait=True)
        await super().truncate_all()

    # --- search ----------------------------------------------------------------------------------------------------

    async def _filter(self, where: SearchFilter) -> qm.Filter | None:
        """The Qdrant filter; URL prefixes and symbols are resolved in PostgreSQL. None: nothing can match."""
        from qdrant_client import models as qm

        must: list[Any] = []
        if where.collection:
            must.append(qm.FieldCondition(key="collection", match=qm.MatchValue(value=where.collection)))
        if where.url_prefix or where.symbol:
            sql, params = search_filter_sql(where)
            async with self.db.pool.connection() as conn:
                if where.symbol:
                    cur = await conn.execute(
                        f"SELECT c.id FROM chunks c JOIN pages p ON p.id = c.page_id WHERE true{sql}", params
                    )
                    ids = [int(r[0]) for r in await cur.fetchall()]
                    if not ids:
                        return None
                    must.append(qm.HasIdCondition(has_id=ids))
                else:
                    cur = await conn.execute(f"SELECT DISTINCT p.url FROM pages p WHERE true{sql}", params)
                    urls = [str(r[0]) for r in await cur.fetchall()]
                    if not urls:
                        return None
                    must.append(qm.FieldCondition(key="url", match=qm.MatchAny(any=urls)))
        return qm.Filter(must=must)

    async def _query(self, what: str, where: SearchFilter, k: int, **kwargs: Any) -> list[tuple[int, float]]:
        query_filter = await self._filter(where)
        if query_filter is None:
            return []
        async with self._qdrant(what) as client:
            result = await client.query_points(
                self.name, query_filter=query_filter, limit=k, with_payload=False, **kwargs
            )
        return [(int(p.id), float(p.score)) for p in result.points]

    async def dense_candidates(self, vector: np.ndarray, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Nearest chunks by cosine similarity, from Qdrant."""
        return await self._query(
            "dense search", where, k, query=np.asarray(vector, dtype=np.float32).tolist(), using=DENSE
        )

    async def lexical_candidates(self, query: str, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Chunks by BM25 over the lexical sparse vectors (Qdrant applies the IDF)."""
        from qdrant_client import models as qm

        vec = query_vector(query)
        if not vec.indices:
            return []
        sparse = qm.SparseVector(indices=list(vec.indices), values=list(vec.values))
        return await self._query("lexical search", where, k, query=sparse, using=LEXICAL)

    async def sparse_candidates(self, query: SparseVec, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Chunks by SPLADE dot product, from Qdrant."""
        from qdrant_client import models as qm

        if not query.indices:
            return []
        sparse = qm.SparseVector(indices=list(query.indices), values=list(query.values))
        return await self._query("SPLADE search", where, k, query=sparse, using=SPLADE)

    async def fused_candidates(
        self,
        legs: dict[str, Any],
        weights: dict[str, float],
        rrf_k: int,
        k: int,
        where: SearchFilter,
    ) -> list[tuple[int, float]]:
        """One Query API call: a prefetch per leg (dense vector, lexical text, sparse SPLADE vector), fused by RRF."""
        from qdrant_client import models as qm

        prefetch, used = [], []
        for name, query in legs.items():
            if name == LEXICAL:
                query = query_vector(query)
            if isinstance(query, SparseVec):
                if not query.indices:
                    continue
                query = qm.SparseVector(indices=list(query.indices), values=list(query.values))
            else:
                query = np.asarray(query, dtype=np.float32).tolist()
            using = SPLADE if name == "sparse" else name  # the retriever's leg name → the named vector
            prefetch.append(qm.Prefetch(query=query, using=using, limit=k))
            used.append(weights.get(name, 1.0))
        if not prefetch:
            return []
        equal = len(set(used)) == 1
        query: Any
        if self._rrf_level == 2 and not equal:
            query = qm.RrfQuery(rrf=qm.Rrf(k=rrf_k, weights=used))
        elif self._rrf_level >= 1:
            query = qm.RrfQuery(rrf=qm.Rrf(k=rrf_k))
        else:
            query = qm.FusionQuery(fusion=qm.Fusion.RRF)
        try:
            return await self._query("hybrid search", where, k, prefetch=prefetch, query=query)
        except VectorStoreError as exc:
            if self._rrf_level == 0 or "rrf" not in str(exc).lower():
                raise
            # An older server: step down once and for all, and say so.
            self._rrf_level -= 1
            log.warning("Qdrant refused this RRF form (older server?); falling back to a simpler one: %s", exc)
            return await self.fused_candidates(legs, weights, rrf_k, k, where)

    # --- repair ----------------------------------------------------------------------------------------------------

    async def repair(self, *, dry_run: bool = False) -> RepairReport:
        """Compare chunk rows with points; unless dry_run, write missing points and delete orphans and mismatches."""
        return await qdrant_repair.repair(self, dry_run=dry_run)
