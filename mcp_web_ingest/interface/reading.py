"""read_page's output: a stored page as markdown from a chosen section on, within a budget, with its outline."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.ingest.sanitize import WEB_SCHEMES, clean_markdown, clean_text, safe_url
from mcp_web_ingest.ingest.urls import normalize_url, validate_url
from mcp_web_ingest.interface.schemas import deep_link
from mcp_web_ingest.storage.interfaces import Catalog
from mcp_web_ingest.storage.records import StoredDocument, StoredSection, validate_collection

__all__ = ["MAX_OUTLINE", "OutlineEntryOut", "ReadPageResult", "find_section", "load_document", "read_result"]

MAX_OUTLINE = 300  # sections listed in the outline; the rest are counted in outline_truncated


class OutlineEntryOut(BaseModel):
    """One section of the page: where it is and how long."""

    index: int = Field(description="Pass as from_section to read from here")
    level: int = Field(description="Heading level 1-6; 0 for text before the first heading")
    heading: str
    deep_link: str
    chars: int = Field(description="Length of the section's markdown")


class ReadPageResult(BaseModel):
    """A stored page (or part of it) as markdown."""

    url: str
    title: str
    collection: str
    page_id: int
    indexed_at: str = Field(description="When this text was stored (ISO 8601)")
    markdown: str = Field(description="The sections shown, in page order, each under its heading")
    first_section: int = Field(description="Outline index of the first section shown")
    last_section: int = Field(description="Outline index of the last section shown")
    next_section: int | None = Field(description="Outline index to pass as from_section to read on; null at the end")
    truncated: bool = Field(description="True when the last section shown was cut to fit max_chars")
    from_chunks: bool = Field(
        description="True when the page was stored before whole sections were kept: the text is rebuilt from its "
        "chunks and may repeat a few lines; index_web_page with force=true stores it exactly"
    )
    outline: list[OutlineEntryOut]
    outline_truncated: int = Field(default=0, description="Sections left out of the outline")
    content_format: str = Field(default="html", description="Format the text was read from (html, markdown, pdf...)")
    content_url: str | None = Field(
        default=None, description="The document the text was read from when not this URL (a Markdown twin)"
    )


def find_section(doc: StoredDocument, section: str) -> int:
    """Index of the section with this anchor, else with this heading (case-insensitive); InvalidInputError if none."""
    wanted = section.strip().lstrip("#")
    for i, s in enumerate(doc.sections):
        if s.anchor and s.anchor == wanted:
            return i
    folded = wanted.casefold()
    for i, s in enumerate(doc.sections):
        if clean_text(s.heading).casefold() == folded:
            return i
    headings = ", ".join(repr(clean_text(s.heading)) for s in doc.sections[:12] if s.heading)
    raise InvalidInputError(
        f"{doc.url} has no section with the anchor or heading {section!r}; its sections include {headings}. "
        "Call read_page without `section` to see the whole outline."
    )


def _section_markdown(s: StoredSection) -> str:
    body = clean_markdown(s.markdown)
    if s.level > 0 and s.heading:
        heading = "#" * s.level + " " + clean_text(s.heading)
        return f"{heading}\n\n{body}" if body else heading
    return body


def read_result(doc: StoredDocument, start: int, max_chars: int) -> ReadPageResult:
    """Sections from ``start`` on while they fit in ``max_chars`` (the first one is cut to fit if it alone is over)."""
    if not doc.sections:
        raise InvalidInputError(f"{doc.url} has no stored text.")
    if not 0 <= start < len(doc.sections):
        raise InvalidInputError(
            f"from_section must be between 0 and {len(doc.sections) - 1} for {doc.url} (see the outline)."
        )
    url = safe_url(doc.url, schemes=WEB_SCHEMES, escape=False) or ""
    parts: list[str] = []
    used, end, truncated = 0, start, False
    for i in range(start, len(doc.sections)):
        text = _section_markdown(doc.sections[i])
        cost = len(text) + (2 if parts else 0)
        if used + cost > max_chars:
            if not parts:  # one section larger than the budget: its beginning
                parts.append(text[:max_chars].rstrip())
                end, truncated = i, True
            break
        parts.append(text)
        used += cost
        end = i
    outline = [
        OutlineEntryOut(
            index=i,
            level=s.level,
            heading=clean_text(s.heading) or clean_text(doc.title),
            deep_link=deep_link(url, s.anchor),
            chars=len(s.markdown),
        )
        for i, s in enumerate(doc.sections[:MAX_OUTLINE])
    ]
    return ReadPageResult(
        url=url,
        title=clean_text(doc.title),
        collection=doc.collection,
        page_id=doc.page_id,
        indexed_at=doc.indexed_at.isoformat(),
        markdown="\n\n".join(parts),
        first_section=start,
        last_section=end,
        next_section=end + 1 if end + 1 < len(doc.sections) else None,
        truncated=truncated,
        from_chunks=doc.from_chunks,
        outline=outline,
        outline_truncated=max(0, len(doc.sections) - MAX_OUTLINE),
        content_format=doc.content_format,
        content_url=doc.content_url,
    )


async def load_document(
    catalog: Catalog, url: str | None, page_id: int | None, collection: str | None
) -> tuple[StoredDocument, str | None]:
    """The stored page named by URL (a deep link's fragment is returned apart) or by id; InvalidInputError else."""
    if (url is None) == (page_id is None):
        raise InvalidInputError("Give either url (a page URL or a search result's deep link) or page_id.")
    fragment = None
    if url is not None:
        base, _, fragment = url.partition("#")
        url = normalize_url(validate_url(base))
    collection = validate_collection(collection) if collection else None
    doc = await catalog.read_document(url=url, page_id=page_id, collection=collection)
    if doc is None:
        where = f" in collection {collection!r}" if collection else ""
        named = url if url is not None else f"page_id {page_id}"
        raise InvalidInputError(
            f"{named} is not indexed{where}; read_page reads stored pages only (nothing is fetched). "
            "Index it first with index_web_page, or find indexed pages with search or list_sources."
        )
    return doc, fragment or None
