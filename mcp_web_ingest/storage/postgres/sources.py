"""Collections, sources and per-page bookkeeping of the PostgreSQL catalog: listing, deleting, links, validators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from mcp_web_ingest.storage.db import Database
from mcp_web_ingest.storage.postgres.changes import record_removed
from mcp_web_ingest.storage.records import Deleted, SearchFilter, StoredPage, search_filter_sql, translate_errors


async def collection_id(conn: psycopg.AsyncConnection, name: str) -> int:
    """The id of a collection, creating it when new."""
    cur = await conn.execute(
        "INSERT INTO collections (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (name,),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _delete_chunks(conn: psycopg.AsyncConnection, sql: str, params: list[Any], returning_ids: bool) -> list[int]:
    """Delete chunks (sql ends in RETURNING their id) ahead of their pages, where the caller needs the ids.

    Otherwise nothing runs: deleting the pages cascades to their chunks, without sending every id back.
    """
    if not returning_ids:
        return []
    cur = await conn.execute(sql, params)
    return [int(r[0]) for r in await cur.fetchall()]


@translate_errors
class SourcesMixin:
    """PostgresCatalog's queries on collections and whole pages, below the chunk level."""

    db: Database

    async def touch_page(
        self,
        page_id: int,
        etag: str | None,
        last_modified: str | None,
        http_status: int,
        final_url: str,
        label: tuple[str | None, str] | None = None,
    ) -> None:
        """Record a fresh crawl of an unchanged page (time, validators and version label), chunks untouched.

        A label found in the URL does not replace one the caller gave before; a given one replaces either.
        """
        version, source = label or (None, "url")
        async with self.db.pool.connection() as conn:
            await conn.execute(
                "UPDATE pages SET crawled_at = now(), etag = %s, last_modified = %s, http_status = %s, final_url = %s, "
                "version = CASE WHEN %s = 'given' OR version_source IS DISTINCT FROM 'given' THEN %s ELSE version END, "
                "version_source = CASE WHEN %s = 'given' OR version_source IS DISTINCT FROM 'given' "
                "THEN %s ELSE version_source END WHERE id = %s",
                (
                    etag,
                    last_modified,
                    http_status,
                    final_url,
                    source,
                    version,
                    source,
                    source if version else None,
                    page_id,
                ),
            )

    async def find_page_by_hash(self, collection: str, content_hash: str, exclude_url: str) -> StoredPage | None:
        """Another page of the collection with exactly this content, if any."""
        async with self.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT p.id, p.url, p.title, p.content_hash, p.chunk_count, p.pipeline, p.crawled_at, p.etag, "
                "p.last_modified, p.content_format, p.content_url "
                "FROM pages p JOIN collections c ON c.id = p.collection_id "
                "WHERE c.name = %s AND p.content_hash = %s AND p.url <> %s ORDER BY p.id LIMIT 1",
                (collection, content_hash, exclude_url),
            )
            row = await cur.fetchone()
        return StoredPage(**row) if row else None

    async def ensure_collection(self, name: str) -> int:
        """The id of a collection, creating it when new."""
        async with self.db.pool.connection() as conn:
            return await collection_id(conn, name)

    async def page_urls(
        self,
        collection: str | None,
        url_prefix: str | None = None,
        versions: tuple[tuple[str, str], ...] | None = None,
    ) -> list[str]:
        """URLs of stored pages (of a collection, or all), optionally under a prefix and of some versions."""
        filter_sql, params = search_filter_sql(SearchFilter(collection, url_prefix, versions=versions))
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(f"SELECT p.url FROM pages p WHERE true{filter_sql} ORDER BY p.id", params)
            return [str(r[0]) for r in await cur.fetchall()]

    async def delete_page(self, page_id: int, *, returning_ids: bool = False) -> Deleted:
        """Remove a page with its chunks; returning_ids: report the chunks' ids (an index outside needs them)."""
        async with self.db.pool.connection() as conn, conn.transaction():
            sql = "DELETE FROM chunks WHERE page_id = %s RETURNING id"
            gone = await _delete_chunks(conn, sql, [page_id], returning_ids)
            cur = await conn.execute("DELETE FROM pages WHERE id = %s RETURNING collection_id, url, title", (page_id,))
            removed = await cur.fetchall()
            await record_removed(conn, removed)
        return Deleted(len(removed), tuple(gone))

    async def set_links(self, page_id: int, links: Sequence[str]) -> None:
        """Remember a page's outgoing links (a later 304 answer has no body to read them from)."""
        async with self.db.pool.connection() as conn:
            await conn.execute("UPDATE pages SET links = %s WHERE id = %s", (list(links), page_id))

    async def get_links(self, page_id: int) -> tuple[str, ...]:
        """The outgoing links stored for a page."""
        async with self.db.pool.connection() as conn:
            row = await (await conn.execute("SELECT links FROM pages WHERE id = %s", (page_id,))).fetchone()
        return tuple(row[0] or ()) if row else ()

    async def version_labels(self, collection: str | None) -> dict[str, list[str]]:
        """The version labels of each collection's pages (of one collection, or all)."""
        sql = (
            "SELECT c.name, array_agg(DISTINCT p.version) FROM pages p JOIN collections c ON c.id = p.collection_id "
            "WHERE p.version IS NOT NULL"
        )
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                sql + (" AND c.name = %s" if collection else "") + " GROUP BY c.name",
                [collection] if collection else [],
            )
            return {name: list(labels) for name, labels in await cur.fetchall()}

    async def list_sources(self) -> list[dict[str, Any]]:
        """Pages, chunks and last crawl per collection and domain, with the state of the newest job there."""
        async with self.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                """
                SELECT c.name AS collection, p.domain, p.domain_prefix AS site, count(*) AS pages,
                       sum(p.chunk_count) AS chunks, max(p.crawled_at) AS last_crawled_at,
                       min(p.crawled_at) AS oldest_verified_at,
                       coalesce(array_agg(DISTINCT p.version) FILTER (WHERE p.version IS NOT NULL), '{}') AS versions,
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

    async def delete_source(
        self, collection: str, domain: str | None = None, url_prefix: str | None = None, *, returning_ids: bool = False
    ) -> Deleted:
        """Delete a collection's pages (all, or of one domain, or under a URL prefix), reporting how many."""
        filter_sql, params = search_filter_sql(SearchFilter(collection, url_prefix))
        if domain:
            filter_sql += " AND p.domain = %s"
            params.append(domain.lower())
        async with self.db.pool.connection() as conn, conn.transaction():
            sql = f"DELETE FROM chunks c USING pages p WHERE c.page_id = p.id{filter_sql} RETURNING c.id"
            gone = await _delete_chunks(conn, sql, params, returning_ids)
            cur = await conn.execute(
                f"DELETE FROM pages p WHERE true{filter_sql} RETURNING p.collection_id, p.url, p.title", params
            )
            removed = await cur.fetchall()
            deleted = len(removed)
            if not domain and not url_prefix and collection != "default":
                await conn.execute("DELETE FROM collections WHERE name = %s", (collection,))  # its log goes too
            else:
                await record_removed(conn, removed)
        return Deleted(int(deleted), tuple(gone))

    async def truncate_all(self) -> None:
        """Delete every page, chunk and collection except 'default' (tests and `db reset`)."""
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "TRUNCATE chunk_symbols, chunk_sparse_postings, chunks, pages, page_changes, refresh_schedules, "
                "crawl_urls, crawl_jobs RESTART IDENTITY CASCADE"
            )
            await conn.execute("DELETE FROM collections WHERE name <> 'default'")
