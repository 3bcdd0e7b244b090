"""A page's extracted markdown, section by section: written with the page, read back whole by read_page."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from mcp_web_ingest.models import Section
from mcp_web_ingest.storage.records import StoredDocument, StoredSection

__all__ = ["read_document", "write_sections"]

_PAGE = (
    "SELECT p.id, p.url, p.title, co.name, p.crawled_at, p.indexed_at, p.content_format, p.content_url FROM pages p "
    "JOIN collections co ON co.id = p.collection_id "
)


async def write_sections(conn: psycopg.AsyncConnection, page_id: int, sections: Sequence[Section]) -> None:
    """Replace the page's stored sections (inside the page's write transaction)."""
    await conn.execute("DELETE FROM page_sections WHERE page_id = %s", (page_id,))
    async with (
        conn.cursor() as cur,
        cur.copy("COPY page_sections (page_id, ordinal, level, heading, anchor, path, markdown) FROM STDIN") as copy,
    ):
        for i, s in enumerate(sections):
            await copy.write_row((page_id, i, s.level, s.heading, s.anchor, list(s.path), s.markdown))


async def read_document(
    conn: psycopg.AsyncConnection, *, url: str | None = None, page_id: int | None = None, collection: str | None = None
) -> StoredDocument | None:
    """The stored page by id, or by URL (in the collection given, else the most recently indexed copy), or None.

    Pages stored before sections were kept are rebuilt from their chunks (consecutive chunks of one section joined;
    the chunks' overlap repeats a few lines), marked ``from_chunks``.
    """
    if page_id is not None:
        cur = await conn.execute(_PAGE + "WHERE p.id = %s", (page_id,))
    elif collection is not None:
        cur = await conn.execute(_PAGE + "WHERE p.url = %s AND co.name = %s", (url, collection))
    else:
        cur = await conn.execute(_PAGE + "WHERE p.url = %s ORDER BY p.indexed_at DESC LIMIT 1", (url,))
    row = await cur.fetchone()
    if row is None:
        return None
    pid, page_url, title, coll, crawled_at, indexed_at, content_format, content_url = row
    cur = await conn.execute(
        "SELECT level, heading, anchor, path, markdown FROM page_sections WHERE page_id = %s ORDER BY ordinal",
        (pid,),
    )
    sections = [StoredSection(int(lv), h, a, tuple(p or ()), md) for lv, h, a, p, md in await cur.fetchall()]
    from_chunks = not sections
    if from_chunks:
        sections = await _sections_from_chunks(conn, int(pid), title)
    return StoredDocument(
        int(pid),
        page_url,
        title,
        coll,
        crawled_at,
        indexed_at,
        tuple(sections),
        from_chunks=from_chunks,
        content_format=content_format,
        content_url=content_url,
    )


async def _sections_from_chunks(conn: psycopg.AsyncConnection, page_id: int, title: str) -> list[StoredSection]:
    cur = await conn.execute(
        "SELECT section_path, anchor, text FROM chunks WHERE page_id = %s ORDER BY ordinal", (page_id,)
    )
    sections: list[StoredSection] = []
    for path, anchor, text in await cur.fetchall():
        path = tuple(path or ())
        if path and path[0] == title:  # the chunker puts the page title first
            path = path[1:]
        if sections and sections[-1].path == path and sections[-1].anchor == anchor:
            last = sections[-1]
            sections[-1] = StoredSection(last.level, last.heading, last.anchor, path, last.markdown + "\n\n" + text)
        else:
            sections.append(StoredSection(len(path), path[-1] if path else "", anchor, path, text))
    return sections
