"""Browsing the index without reading text: pages and collections in id order, the change log's tail, and the
short value lists that argument completion offers (collections, versions, URLs, job ids)."""

from __future__ import annotations

from typing import Any

from mcp_web_ingest.storage.db import Database
from mcp_web_ingest.storage.records import (
    ChangeEvent,
    CollectionListing,
    PageListing,
    Suggestions,
    translate_errors,
)

__all__ = ["COUNT_CAP", "PostgresDirectory", "like_prefix"]

COUNT_CAP = 10_000  # completions count matches up to here; beyond it the total is left out


def like_prefix(text: str) -> str:
    """A LIKE pattern matching strings that start with ``text`` (its wildcards taken literally)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@translate_errors
class PostgresDirectory:
    """Keyset-paged listings and bounded suggestions, each one indexed query."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def collections_after(self, after_id: int, limit: int) -> list[CollectionListing]:
        """Collections with an id above ``after_id``, in id order, with their page counts."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.id, c.name, (SELECT count(*) FROM pages p WHERE p.collection_id = c.id) FROM collections c "
                "WHERE c.id > %s ORDER BY c.id LIMIT %s",
                (after_id, limit),
            )
            return [CollectionListing(int(i), n, int(k)) for i, n, k in await cur.fetchall()]

    async def pages_after(self, after_id: int, limit: int, collection: str | None = None) -> list[PageListing]:
        """Pages with an id above ``after_id`` (of one collection, or all), in id order."""
        sql = (
            "SELECT p.id, co.name, p.url, p.title, p.indexed_at FROM pages p "
            "JOIN collections co ON co.id = p.collection_id WHERE p.id > %s"
        )
        params: list[Any] = [after_id]
        if collection is not None:
            sql += " AND co.name = %s"
            params.append(collection)
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(sql + " ORDER BY p.id LIMIT %s", [*params, limit])
            return [PageListing(int(i), c, u, t, at) for i, c, u, t, at in await cur.fetchall()]

    async def collection_exists(self, name: str) -> bool:
        """Whether a collection of this name exists."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM collections WHERE name = %s", (name,))
            return await cur.fetchone() is not None

    async def last_change_id(self) -> int:
        """The newest change log id (0 when the log is empty)."""
        async with self.db.pool.connection() as conn:
            row = await (await conn.execute("SELECT coalesce(max(id), 0) FROM page_changes")).fetchone()
        return int(row[0]) if row else 0

    async def changes_after(self, after_id: int, limit: int) -> list[ChangeEvent]:
        """Change log rows with an id above ``after_id``, oldest first."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT pc.id, co.name, pc.url, pc.change FROM page_changes pc "
                "JOIN collections co ON co.id = pc.collection_id WHERE pc.id > %s ORDER BY pc.id LIMIT %s",
                (after_id, limit),
            )
            return [ChangeEvent(int(i), c, u, ch) for i, c, u, ch in await cur.fetchall()]

    # --- completion ---------------------------------------------------------------------------------------------

    async def _suggest(self, sql: str, params: list[Any], limit: int) -> Suggestions:
        """The first ``limit`` values of ``sql`` (one ordered text column ``v``), and how many match up to COUNT_CAP."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(f"{sql} LIMIT %s", [*params, limit])
            values = tuple(str(r[0]) for r in await cur.fetchall())
            if len(values) < limit:
                return Suggestions(values, len(values), False)
            cur = await conn.execute(f"SELECT count(*) FROM ({sql} LIMIT {COUNT_CAP + 1}) s", params)
            row = await cur.fetchone()
        counted = int(row[0]) if row else 0
        return Suggestions(values, counted if counted <= COUNT_CAP else None, counted > len(values))

    async def suggest_collections(self, prefix: str, limit: int) -> Suggestions:
        """Collection names starting with ``prefix``."""
        sql = "SELECT name AS v FROM collections WHERE name LIKE %s ORDER BY name"
        return await self._suggest(sql, [like_prefix(prefix)], limit)

    async def suggest_versions(self, prefix: str, collection: str | None, limit: int) -> Suggestions:
        """Documentation version labels starting with ``prefix`` (of one collection, or all)."""
        sql = "SELECT DISTINCT p.version AS v FROM pages p JOIN collections co ON co.id = p.collection_id "
        sql += "WHERE p.version LIKE %s" + (" AND co.name = %s" if collection else "") + " ORDER BY v"
        return await self._suggest(sql, [like_prefix(prefix), *([collection] if collection else [])], limit)

    async def suggest_urls(self, prefix: str, collection: str | None, limit: int) -> Suggestions:
        """Indexed page URLs starting with ``prefix`` (of one collection, or all)."""
        sql = "SELECT DISTINCT p.url AS v FROM pages p JOIN collections co ON co.id = p.collection_id "
        sql += "WHERE p.url LIKE %s" + (" AND co.name = %s" if collection else "") + " ORDER BY v"
        return await self._suggest(sql, [like_prefix(prefix), *([collection] if collection else [])], limit)

    async def suggest_url_prefixes(self, prefix: str, collection: str | None, limit: int) -> Suggestions:
        """Prefixes of indexed URLs one step longer than ``prefix``: the sites (scheme://host/) until one is
        written, then the next folder (up to and including its '/') or the page itself."""
        after_host = prefix.find("/", prefix.find("://") + 3) if "://" in prefix else -1
        if after_host < 0:
            step = "split_part(p.url, '/', 1) || '//' || split_part(p.url, '/', 3) || '/'"
        else:
            # the text after the prefix up to its first '/', or all of it (a page)
            rest = "substr(p.url, %s)"
            step = f"left(p.url, %s + coalesce(nullif(strpos({rest}, '/'), 0), length({rest})))"
        sql = f"SELECT DISTINCT {step} AS v FROM pages p JOIN collections co ON co.id = p.collection_id "
        sql += "WHERE p.url LIKE %s" + (" AND co.name = %s" if collection else "") + " ORDER BY v"
        params: list[Any] = [] if after_host < 0 else [len(prefix), len(prefix) + 1, len(prefix) + 1]
        params += [like_prefix(prefix), *([collection] if collection else [])]
        return await self._suggest(sql, params, limit)

    async def suggest_job_ids(self, prefix: str, limit: int) -> Suggestions:
        """Crawl job ids starting with ``prefix``, newest first."""
        sql = "SELECT id::text AS v FROM crawl_jobs WHERE id::text LIKE %s ORDER BY created_at DESC"
        return await self._suggest(sql, [like_prefix(prefix)], limit)
