"""llms-full.txt: the pages of a site concatenated for language models, split back into those pages.

Each page starts with a level-1 heading, usually followed by a ``Source: <url>`` line (Mintlify, Docusaurus and
VitePress plugins write it so). A part whose source is on the same origin as the file is stored as that page;
a source on another origin is not trusted (a file must not plant text under someone else's URLs) and such parts,
like those without a source, stay in the llms-full.txt page itself.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

from mcp_web_ingest.ingest.formats.markdown_doc import extract_markdown
from mcp_web_ingest.ingest.links import absolute_url
from mcp_web_ingest.ingest.urls import same_origin
from mcp_web_ingest.models import ExtractedPage

__all__ = ["DocumentPart", "split_llms_full"]

_PARSER = MarkdownIt("commonmark", {"html": True})
_SOURCE_LINE = re.compile(
    r"^\s*(?:\*\*)?(?:source|url|link|original(?:\s+url)?)(?:\*\*)?\s*:\s*(?:\*\*)?\s*<?(?:\[[^\]]*\]\()?((?:https?://|/)[^\s<>)]+)",
    re.I,
)
_LINK_ONLY = re.compile(r"^\s*<?(?:\[[^\]]*\]\()?(https?://[^\s<>)]+)\)?>?\s*$")  # a bare absolute link
_SOURCE_WINDOW = 4  # the source line sits within the first lines after the heading

DocumentPart = tuple[str | None, ExtractedPage]  # (its own page URL, or None for the file's own page; content)


def _source_of(lines: list[str]) -> tuple[int, str] | None:
    """(line index, URL) of the source line right under a part's heading."""
    seen = 0
    for i, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue
        seen += 1
        if seen > _SOURCE_WINDOW:
            return None
        match = _SOURCE_LINE.match(line) or _LINK_ONLY.match(line)
        if match:
            return i, match.group(1)
    return None


def split_llms_full(source: str, url: str) -> tuple[list[DocumentPart], list[str]]:
    """The file as (page URL, page) parts, the file's own page (URL None) first when anything is left for it."""
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    starts = [
        t.map[0]
        for t in _PARSER.parse("\n".join(lines))
        if t.type == "heading_open" and t.tag == "h1" and t.level == 0 and t.map
    ]
    bounds = list(zip(starts, [*starts[1:], len(lines)], strict=True))
    kept: list[str] = ["\n".join(lines[: starts[0]])] if starts else ["\n".join(lines)]
    parts: list[DocumentPart] = []
    links: list[str] = []
    for start, end in bounds:
        block = lines[start:end]
        found = _source_of(block)
        target = absolute_url(found[1], url) if found else None
        if found is None or target is None or not same_origin(target, url):
            kept.append("\n".join(block))
            continue
        text = "\n".join(block[: found[0]] + block[found[0] + 1 :])
        page, page_links = extract_markdown(text, target)
        parts.append((target, page))
        links += page_links
    own = "\n\n".join(k for k in kept if k.strip())
    if own.strip() or not parts:
        page, own_links = extract_markdown(own, url)
        parts.insert(0, (None, page))
        links += own_links
    return parts, list(dict.fromkeys(links))
