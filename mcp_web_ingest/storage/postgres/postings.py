"""SPLADE postings and code-symbol rows of the PostgreSQL store: writing them, back-filling, and search legs."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from mcp_web_ingest.encoders.splade import SparseVec
from mcp_web_ingest.ingest.symbols import Symbol, symbol_keys
from mcp_web_ingest.storage.db import Database
from mcp_web_ingest.storage.records import SearchFilter, search_filter_sql, translate_errors


@translate_errors
class PostingsMixin:
    """PostgresStore's SPLADE postings (chunk_sparse_postings) and symbol index (chunk_symbols)."""

    db: Database

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
        filter_sql, params = search_filter_sql(where)
        sql = (
            "SELECT s.chunk_id, 4 - s.tier FROM (SELECT chunk_id, min(role * 2 + (NOT exact)::int) AS tier "
            "FROM chunk_symbols WHERE key = lower(%s) GROUP BY chunk_id) s JOIN chunks c ON c.id = s.chunk_id "
            f"JOIN pages p ON p.id = c.page_id WHERE true{filter_sql} ORDER BY s.tier, s.chunk_id LIMIT %s"
        )
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(sql, [name, *params, k])
            return [(int(i), float(s)) for i, s in await cur.fetchall()]
