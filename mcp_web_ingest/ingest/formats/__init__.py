"""One extractor per document format behind one entry point: HTML, Markdown, text, reST, PDF, notebooks, llms-full.txt.

``detect.document_format`` names the format of a fetched body; ``extract_document`` turns the body into the page's
sections and links, and, for an llms-full.txt, the other pages it carries. Everything here runs in the extraction
worker processes (ingest/extract_worker.py), under their time limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_web_ingest.models import ExtractedPage

__all__ = ["Extraction", "extract_document"]


@dataclass(frozen=True)
class Extraction:
    """What one fetched document yields: its own page, its links, and pages it carries for other URLs."""

    page: ExtractedPage
    links: tuple[str, ...]
    parts: tuple[tuple[str, ExtractedPage], ...] = ()  # (page URL, page): the pages of an llms-full.txt


def _toc(parts: list[tuple[str, ExtractedPage]]) -> str:
    return "\n".join(f"- [{page.title}]({url})" for url, page in parts)


def extract_document(fmt: str, url: str, *, text: str = "", data: bytes = b"") -> Extraction:
    """Extract a document of format ``fmt`` (text formats from ``text``, PDF from ``data``); ExtractError if not."""
    if fmt == "html":
        from mcp_web_ingest.ingest.formats.html import extract_with_links

        page, links = extract_with_links(text, url)
        return Extraction(page, links)
    if fmt == "pdf":
        from mcp_web_ingest.ingest.formats.pdf import extract_pdf

        return Extraction(extract_pdf(data, url), ())
    if fmt == "rst":
        from mcp_web_ingest.ingest.formats.rst import extract_rst

        page, links = extract_rst(text, url)
        return Extraction(page, links)
    if fmt == "notebook":
        from mcp_web_ingest.ingest.formats.notebook import extract_notebook

        page, found = extract_notebook(text, url)
    elif fmt == "llms-full":
        from mcp_web_ingest.ingest.formats.llms_full import split_llms_full
        from mcp_web_ingest.ingest.formats.markdown_doc import extract_markdown

        split, found = split_llms_full(text, url)
        own = next((p for u, p in split if u is None), None)
        carried = [(u, p) for u, p in split if u is not None]
        if own is None:  # every part went to its own page: the file's page lists them
            own = extract_markdown(f"# {url.rsplit('/', 1)[-1]}\n\n{_toc(carried)}", url)[0]
        return Extraction(own, tuple(found), tuple(carried))
    elif fmt == "markdown":
        from mcp_web_ingest.ingest.formats.markdown_doc import extract_markdown

        page, found = extract_markdown(text, url)
    else:
        from mcp_web_ingest.ingest.formats.text import extract_text

        page, found = extract_text(text, url)
    return Extraction(page, tuple(found))
