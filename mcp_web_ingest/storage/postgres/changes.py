"""The change log of pages: what each write or delete changed, section by section, and reading it back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mcp_web_ingest.models import Chunk
from mcp_web_ingest.storage.records import PageChange, SectionChange

__all__ = ["read_changes", "record_removed", "record_write", "section_changes"]

SectionKey = tuple[tuple[str, ...], str | None]  # (section path without the page title, anchor)


def _sections(rows: Iterable[tuple[Sequence[str], str | None, str]], title: str) -> dict[SectionKey, set[str]]:
    """Chunk content hashes grouped by the section they sit in."""
    grouped: dict[SectionKey, set[str]] = {}
    for path, anchor, content_hash in rows:
        path = tuple(path or ())
        if path[:1] == (title,):  # the chunker puts the page title first
            path = path[1:]
        grouped.setdefault((path, anchor), set()).add(content_hash)
    return grouped


def section_changes(
    old: Iterable[tuple[Sequence[str], str | None, str]],
    new: Iterable[tuple[Sequence[str], str | None, str]],
    old_title: str,
    new_title: str,
) -> list[SectionChange]:
    """Sections added, removed or whose text changed (compared by their chunks' content hashes), in page order."""
    before, after = _sections(old, old_title), _sections(new, new_title)
    out = [
        SectionChange("added" if key not in before else "changed", key[0], key[1])
        for key, hashes in after.items()
        if before.get(key) != hashes
    ]
    out += [SectionChange("removed", key[0], key[1]) for key in before if key not in after]
    return out


def _json(sections: Sequence[SectionChange]) -> Jsonb:
    return Jsonb([{"change": s.change, "path": list(s.path), "anchor": s.anchor} for s in sections])


async def record_write(
    conn: psycopg.AsyncConnection,
    collection_key: int,
    url: str,
    title: str,
    old: Sequence[tuple[Sequence[str], str | None, str]] | None,
    old_title: str,
    chunks: Sequence[Chunk],
) -> None:
    """Log a page write: 'added' when there was no page, else 'changed' with its changed sections."""
    if old is None:
        change, sections = "added", []
    else:
        new = [(c.section_path, c.anchor, c.content_hash) for c in chunks]
        change, sections = "changed", section_changes(old, new, old_title, title)
        if not sections and old_title == title:
            return  # re-chunked (force) to the same text: nothing a reader would call a change
    await conn.execute(
        "INSERT INTO page_changes (collection_id, url, title, change, sections) VALUES (%s, %s, %s, %s, %s)",
        (collection_key, url, title, change, _json(sections)),
    )


async def record_removed(conn: psycopg.AsyncConnection, rows: Iterable[tuple[int, str, str]]) -> None:
    """Log pages removed: (collection id, url, title) each."""
    params = [(cid, url, title) for cid, url, title in rows]
    if params:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO page_changes (collection_id, url, title, change) VALUES (%s, %s, %s, 'removed')", params
            )


async def read_changes(
    conn: psycopg.AsyncConnection, collection: str | None, url_prefix: str | None, since: datetime
) -> list[PageChange]:
    """Every logged change since ``since``, oldest first."""
    sql = (
        "SELECT co.name, pc.url, pc.title, pc.change, pc.sections, pc.changed_at FROM page_changes pc "
        "JOIN collections co ON co.id = pc.collection_id WHERE pc.changed_at > %s"
    )
    params: list[Any] = [since]
    if collection is not None:
        sql += " AND co.name = %s"
        params.append(collection)
    if url_prefix:
        sql += " AND starts_with(pc.url, %s)"
        params.append(url_prefix)
    cur = await conn.execute(sql + " ORDER BY pc.changed_at, pc.id", params)
    return [
        PageChange(
            collection=name,
            url=url,
            title=title,
            change=change,
            sections=tuple(SectionChange(s["change"], tuple(s["path"]), s["anchor"]) for s in sections or []),
            changed_at=at,
        )
        for name, url, title, change, sections, at in await cur.fetchall()
    ]
