"""A page's Markdown twin: the same page as the site's authors wrote it, announced by <link rel="alternate">.

Sites built for language models publish one (``page.md`` beside ``page.html``); its text has no navigation to
strip and its code blocks are exactly as written. The twin is read only from the page's own origin, with the
page's own credentials, and any failure falls back to the HTML quietly: the page is never lost over its twin.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import WebIngestError
from mcp_web_ingest.ingest.auth_profiles import RequestAuth
from mcp_web_ingest.ingest.extract_worker import extract_document_isolated
from mcp_web_ingest.ingest.fetch import Fetcher
from mcp_web_ingest.ingest.urls import same_origin
from mcp_web_ingest.models import ExtractedPage

__all__ = ["MarkdownTwin", "read_markdown_twin"]

log = logging.getLogger(__name__)
_TEXT_FORMATS = frozenset({"markdown", "text"})


@dataclass(frozen=True)
class MarkdownTwin:
    """The twin's URL and its content, carrying the HTML page's metadata."""

    url: str
    page: ExtractedPage


async def read_markdown_twin(
    fetcher: Fetcher, page: ExtractedPage, page_url: str, settings: Settings, auth: RequestAuth | None
) -> MarkdownTwin | None:
    """Fetch and extract ``page``'s Markdown twin, or None when there is none usable (the HTML is kept)."""
    twin_url = page.markdown_twin
    if not twin_url or not same_origin(twin_url, page_url):
        return None
    try:
        fetched = await fetcher.fetch(twin_url, auth=auth)
        if fetched.format not in _TEXT_FORMATS:
            log.info("markdown twin %s of %s is %s, keeping the HTML", twin_url, page_url, fetched.content_type)
            return None
        found = await asyncio.to_thread(
            extract_document_isolated, "markdown", fetched.final_url, settings.extract_timeout_s, text=fetched.text
        )
    except WebIngestError as exc:
        log.info("markdown twin %s of %s not used: %s", twin_url, page_url, exc)
        return None
    twin = replace(found.page, canonical_url=page.canonical_url, language=page.language, description=page.description)
    return MarkdownTwin(fetched.final_url, twin)
