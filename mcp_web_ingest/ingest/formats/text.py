"""Plain-text documents: read as Markdown when they are written in it (llms.txt, READMEs), else as paragraphs."""

from __future__ import annotations

import re

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.formats.markdown_doc import check_line_lengths, extract_markdown, url_file_title
from mcp_web_ingest.ingest.markdown import clean_heading
from mcp_web_ingest.ingest.sanitize import clean_markdown
from mcp_web_ingest.models import ExtractedPage, Section

__all__ = ["extract_text", "looks_like_markdown"]

_ATX_HEADING = re.compile(r"^#{1,6}[ \t]+\S", re.M)
_FENCE = re.compile(r"^(?:```|~~~)", re.M)
_MAX_TITLE_LINE = 120


def looks_like_markdown(text: str) -> bool:
    """ATX headings or fenced code: a text file written in Markdown."""
    return bool(_ATX_HEADING.search(text) or _FENCE.search(text))


def extract_text(text: str, url: str) -> tuple[ExtractedPage, list[str]]:
    """A text document as sections (Markdown structure when it has some), with its links."""
    if looks_like_markdown(text):
        return extract_markdown(text, url)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    check_line_lengths(text, url)
    lines = text.split("\n")
    body = "\n".join(line.rstrip() for line in lines).strip("\n")
    markdown = clean_markdown(re.sub(r"\n{3,}", "\n\n", body))
    if not markdown.strip():
        raise ExtractError(f"The document at {url} has no readable text content.")
    first = clean_heading(next((line for line in lines if line.strip()), ""))
    title = first if 0 < len(first) <= _MAX_TITLE_LINE else url_file_title(url)
    return ExtractedPage(title=title, sections=(Section(0, "", None, markdown, ()),)), []
