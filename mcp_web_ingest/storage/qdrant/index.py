"""The Qdrant VectorIndex (VECTOR_STORE=qdrant): dense, lexical and SPLADE vectors of every chunk in one collection.

A point's id is its chunk's catalog id; the Store writes points before the rows and deletes them after (see
storage/store.py). Filters on URL prefixes and symbols, and the rows behind `repair`, come from the catalog.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.lexical import document_vector, query_vector
from mcp_web_ingest.errors import SchemaMismatchError, StoreError, VectorStoreError, WebIngestError
from mcp_web_ingest.models import SparseVec
from mcp_web_ingest.storage.interfaces import Catalog
from mcp_web_ingest.storage.qdrant.collection import BATCH, DENSE, LEXICAL, SPLADE, ensure_qdrant_collection
from mcp_web_ingest.storage.qdrant.connection import close_client, open_client, redact_location
from mcp_web_ingest.storage.records import ChunkEntry, RepairReport, SearchFilter

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient
    from qdrant_client import models as qm

log = logging.getLogger(__name__)


def _sparse(vec: SparseVec) -> qm.SparseVector:
    from qdrant_client import models as qm

    return qm.SparseVector(indices=list(vec.indices), values=list(vec.values))


def _point(entry: ChunkEntry) -> qm.PointStruct:
    """A chunk's point: dense vector, BM25 term vector of context and text, SPLADE vector if any; filter payload."""
    from qdrant_client import models as qm

    vectors: dict[str, Any] = {
        DENSE: np.asarray(entry.vector, dtype=np.float32).tolist(),
        LEXICAL: _sparse(document_vector(entry.text, (entry.context,))),
    }
    if entry.splade is not None:
        vectors[SPLADE] = _sparse(entry.splade)
    payload = {
        "collection": entry.collection,
        "url": entry.url,
        "domain": entry.domain,
        "has_splade": entry.splade is not None,
    }
    return qm.PointStruct(id=entry.id, vector=vectors, payload=payload)


class QdrantIndex:
    """Every vector leg (dense, BM25 lexical with Qdrant's IDF, SPLADE) as named vectors of one Qdrant collection."""

    keeps_sparse_postings = False  # SPLADE vectors live in the points
    outside_catalog = True

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.settings = settings
        self.location = settings.qdrant_url or ":memory:"
        self.local = not self.location.startswith(("http://", "https://"))
        self.name = settings.qdrant_collection
        self.dimension: int | None = None
        self._client: AsyncQdrantClient | None = None
        self._collection_ready = False  # checked or created; retried on first use when Qdrant was down at start

    # --- connection ------------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """False while the client is closed."""
        return self._client is not None

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
        where = redact_location(self.location)
        if self._client is None:
            raise VectorStoreError(f"Qdrant ({where}) is not connected; {what} is not possible now")
        try:
            if not self._collection_ready and self.dimension is not None:
                if await ensure_qdrant_collection(
                    self._client, self.name, self.dimension, self.settings, local=self.local
                ):
                    log.info("created Qdrant collection %s (%d dimensions)", self.name, self.dimension)
                self._collection_ready = True
            yield self._client
        except StoreError:
            raise
        except Exception as exc:
            raise VectorStoreError(
                f"Qdrant ({where}) failed during {what}: {type(exc).__name__}: {exc}. "
                "Check that it is running and reachable; pages stay in PostgreSQL and nothing is half-stored"
            ) from exc

    async def ping(self) -> None:
        """Raise VectorStoreError when Qdrant does not answer."""
        async with self._qdrant("a health check") as client:
            await client.get_collections()

    async def point_count(self) -> int:
        """Points in the collection (exact count)."""
        async with self._qdrant("counting points") as client:
            return int((await client.count(self.name, exact=True)).count)

    async def health(self) -> dict[str, dict[str, Any]]:
        """The qdrant component: reachable, and points stored (a difference from the chunks means run repair)."""
        info: dict[str, Any] = {
            "url": redact_location(self.location),
            "mode": "local" if self.local else "server",
            "collection": self.name,
        }
        try:
            info["points"] = await self.point_count()
        except WebIngestError as exc:
            return {"qdrant": {"status": "error", **info, "detail": str(exc)}}
        return {"qdrant": {"status": "ok", **info}}

    # --- collection ------------------------------------------------------------------------------------------------

    async def ensure_embedding_space(self, dimension: int) -> None:
        """Create the collection if missing, or check its dimension.

        Qdrant being down at start is not fatal: the collection is checked on first use, and health says it is down.
        """
        self.dimension = dimension
        self._collection_ready = False
        try:
            async with self._qdrant("checking the collection"):
                pass
        except SchemaMismatchError:
            raise
        except VectorStoreError as exc:
            log.warning("Qdrant is unreachable at start; search and indexing wait for it: %s", exc)

    async def drop_embedding_space(self) -> None:
        """Drop the collection with the old model's vectors."""
        async with self._qdrant("dropping the collection") as client:
            await client.delete_collection(self.name)
        self._collection_ready = False

    # --- writes ----------------------------------------------------------------------------------------------------

    async def upsert(self, entries: Sequence[ChunkEntry]) -> None:
        """Write the chunks' points (idempotent), in batches."""
        points = [_point(e) for e in entries]
        async with self._qdrant("writing vectors") as client:
            for start in range(0, len(points), BATCH):
                await client.upsert(self.name, points=points[start : start + BATCH], wait=True)

    async def refresh(self, ids: Sequence[int]) -> None:
        """Rewrite the chunks' points from the catalog (dense vector, text, SPLADE postings if any)."""
        await self.upsert(await self.catalog.chunk_entries(ids))

    async def delete(self, ids: Sequence[int]) -> None:
        """Delete the points of chunks that left the catalog; a failure only leaves orphans that `repair` removes."""
        from qdrant_client import models as qm

        try:
            async with self._qdrant("deleting vectors") as client:
                for start in range(0, len(ids), 1000):
                    selector = qm.PointIdsList(points=list(ids[start : start + 1000]))
                    await client.delete(self.name, points_selector=selector, wait=True)
        except VectorStoreError as exc:
            log.warning("%d stale Qdrant points left behind (run `mcp-web-ingest repair`): %s", len(ids), exc)

    async def clear(self) -> None:
        """Delete every point (the collection stays)."""
        from qdrant_client import models as qm

        async with self._qdrant("clearing the collection") as client:
            if await client.collection_exists(self.name):
                await client.delete(self.name, points_selector=qm.FilterSelector(filter=qm.Filter()), wait=True)

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
        rows = await self.catalog.chunk_texts(ids)
        if len(rows) < len(ids):  # points of deleted chunks: drop them, or the back-fill would see them forever
            await self.delete(sorted(set(ids) - {r[0] for r in rows}))
        return rows

    async def set_sparse(self, ids: Sequence[int], vectors: Sequence[SparseVec]) -> int:
        """Add back-filled SPLADE vectors to existing points."""
        from qdrant_client import models as qm

        async with self._qdrant("writing SPLADE vectors") as client:
            points = [qm.PointVectors(id=i, vector={SPLADE: _sparse(v)}) for i, v in zip(ids, vectors, strict=True)]
            await client.update_vectors(self.name, points=points, wait=True)
            await client.set_payload(self.name, payload={"has_splade": True}, points=list(ids), wait=True)
        return len(ids)

    # --- search ----------------------------------------------------------------------------------------------------

    async def _filter(self, where: SearchFilter) -> qm.Filter | None:
        """The Qdrant filter; URL prefixes and symbols are resolved in the catalog. None: nothing can match."""
        from qdrant_client import models as qm

        must: list[Any] = []
        if where.collection:
            must.append(qm.FieldCondition(key="collection", match=qm.MatchValue(value=where.collection)))
        if where.symbol:
            ids = await self.catalog.chunk_ids_matching(where)
            if not ids:
                return None
            must.append(qm.HasIdCondition(has_id=ids))
        elif where.url_prefix or where.versions is not None:
            urls = await self.catalog.page_urls(where.collection, where.url_prefix, where.versions)
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
        """Nearest chunks by cosine similarity."""
        return await self._query(
            "dense search", where, k, query=np.asarray(vector, dtype=np.float32).tolist(), using=DENSE
        )

    async def lexical_candidates(self, query: str, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Chunks by BM25 over the lexical sparse vectors (Qdrant applies the IDF)."""
        vec = query_vector(query)
        if not vec.indices:
            return []
        return await self._query("lexical search", where, k, query=_sparse(vec), using=LEXICAL)

    async def sparse_candidates(self, query: SparseVec, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Chunks by SPLADE dot product."""
        if not query.indices:
            return []
        return await self._query("SPLADE search", where, k, query=_sparse(query), using=SPLADE)

    # --- repair ----------------------------------------------------------------------------------------------------

    async def repair(self, *, dry_run: bool = False) -> RepairReport:
        """Compare chunk rows with points; unless dry_run, write missing points and delete orphans and mismatches."""
        rows = await self.catalog.chunk_urls()
        points: dict[int, str | None] = {}
        async with self._qdrant("reading point ids") as client:
            offset = None
            while True:
                batch, offset = await client.scroll(
                    self.name, limit=1000, offset=offset, with_payload=["url"], with_vectors=False
                )
                points.update({int(p.id): (p.payload or {}).get("url") for p in batch})
                if offset is None:
                    break
        report = RepairReport.compare(rows, points)
        if dry_run or report.in_sync:
            return report
        await self.delete(report.orphans)
        todo = [*report.missing, *report.mismatched]
        for start in range(0, len(todo), BATCH):
            await self.refresh(todo[start : start + BATCH])
        return replace(report, fixed=True)
