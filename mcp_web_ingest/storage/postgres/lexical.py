"""The BM25 lexical leg over chunk_lexical_postings: IDF from posting counts, impact-ordered postings, back-fill."""

from __future__ import annotations

import asyncio
import logging
import time

from mcp_web_ingest.encoders.lexical import bm25_idf, query_vector
from mcp_web_ingest.storage.db import Database
from mcp_web_ingest.storage.postgres.postings import copy_lexical_postings, lexical_vectors
from mcp_web_ingest.storage.records import SearchFilter, search_filter_sql, tsquery_text_is_strict

log = logging.getLogger(__name__)

# Postings read per query term, best first. A term in more chunks than this has a low IDF; its weakest postings
# barely move a score, and reading them all made common words the whole cost of a query. Measured on both eval
# corpora: 2,000 costs nothing against exact BM25 (tools/eval.py).
POSTINGS_PER_TERM = 2000
# Posting counts (document frequencies) and the number of chunks change slowly; reading them once a minute keeps a
# search to one scan of the postings it uses.
STATS_TTL_S = 60.0
BACKFILL_BATCH = 500


class LexicalPostings:
    """BM25 search and back-fill over the chunks' BM25 postings in PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._df: dict[int, tuple[float, int]] = {}  # term -> (read at, posting count)
        self._chunks: tuple[float, int] = (0.0, 0)

    async def _stats(self, terms: list[int]) -> tuple[int, dict[int, int]]:
        """The number of chunks and each term's posting count, from a short-lived cache."""
        now = time.monotonic()
        stale = [t for t in terms if now - self._df.get(t, (-STATS_TTL_S, 0))[0] >= STATS_TTL_S]
        refresh_total = now - self._chunks[0] >= STATS_TTL_S
        if stale or refresh_total:
            async with self.db.pool.connection() as conn:
                if stale:
                    cur = await conn.execute(
                        "SELECT t, (SELECT count(*) FROM chunk_lexical_postings p WHERE p.term = t) "
                        "FROM unnest(%s::int4[]) AS t",
                        (stale,),
                    )
                    for term, df in await cur.fetchall():
                        self._df[int(term)] = (now, int(df))
                if refresh_total:
                    cur = await conn.execute("SELECT count(*) FROM chunks")
                    row = await cur.fetchone()
                    self._chunks = (now, int(row[0]) if row else 0)
        counts = {t: self._df[t][1] for t in terms}
        if len(self._df) > 100_000:  # forget the oldest half rather than grow without bound
            for term, _ in sorted(self._df.items(), key=lambda kv: kv[1][0])[: len(self._df) // 2]:
                del self._df[term]
        return self._chunks[1], counts

    async def candidates(self, query: str, k: int, where: SearchFilter) -> list[tuple[int, float]]:
        """Chunks by BM25 score for the query's terms, best first; quotes and -exclusions filter as websearch does."""
        terms = list(query_vector(query).indices)
        if not terms:
            return []
        total, df = await self._stats(terms)
        idf = [bm25_idf(df[t], max(total, 1)) for t in terms]
        conditions, params = ["lp.term = q.term"], []
        if where.collection:
            # The postings carry their collection: the index alone serves a collection filter.
            conditions.append("lp.collection_id = (SELECT id FROM collections WHERE name = %s)")
            params.append(where.collection)
        filter_sql, more = search_filter_sql(SearchFilter(None, where.url_prefix, where.symbol, where.versions))
        if tsquery_text_is_strict(query):
            filter_sql += " AND c.tsv @@ websearch_to_tsquery('english', %s)"
            more.append(query)
        source = "chunk_lexical_postings lp"
        if filter_sql:
            # Filtered before each term's postings are cut to the best ones, so the pages under a URL prefix keep
            # their matches when other pages hold the term's strongest postings.
            source += " JOIN chunks c ON c.id = lp.chunk_id JOIN pages p ON p.id = c.page_id"
        scan = f"SELECT lp.chunk_id, lp.weight FROM {source} WHERE {' AND '.join(conditions)}{filter_sql}"
        params += more
        sql = (
            "SELECT m.chunk_id, sum(m.weight * q.idf) AS score "
            "FROM unnest(%s::int4[], %s::float8[]) AS q(term, idf) "
            f"CROSS JOIN LATERAL ({scan} ORDER BY lp.weight DESC LIMIT %s) m "
            "GROUP BY m.chunk_id ORDER BY score DESC, m.chunk_id LIMIT %s"
        )
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(sql, [terms, idf, *params, POSTINGS_PER_TERM, k])
            return [(int(i), float(s)) for i, s in await cur.fetchall()]

    async def backfill(self) -> int:
        """Write the BM25 postings of chunks stored before they existed; returns how many chunks were filled."""
        filled = 0
        while True:
            async with self.db.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "SELECT c.id, p.collection_id, c.section_path, c.text FROM chunks c "
                    "JOIN pages p ON p.id = c.page_id WHERE NOT c.has_lexical ORDER BY c.id LIMIT %s "
                    "FOR UPDATE OF c SKIP LOCKED",
                    (BACKFILL_BATCH,),
                )
                rows = await cur.fetchall()
                if not rows:
                    break
                vectors = await asyncio.to_thread(lexical_vectors, [(path, text) for _, _, path, text in rows])
                await copy_lexical_postings(
                    conn, [(int(i), int(k), vec) for (i, k, _, _), vec in zip(rows, vectors, strict=True)]
                )
                await conn.execute("UPDATE chunks SET has_lexical = true WHERE id = ANY(%s)", ([r[0] for r in rows],))
            filled += len(rows)
        if filled:
            log.info("BM25 postings written for %d chunks stored before them", filled)
            # Index-only scans need the visibility map that VACUUM sets; without it every posting read visits the
            # heap (3-4x slower) until autovacuum comes by.
            async with self.db.pool.connection() as conn:
                await conn.set_autocommit(True)
                try:
                    await conn.execute("VACUUM (ANALYZE) chunk_lexical_postings")
                finally:
                    await conn.set_autocommit(False)
        return filled
