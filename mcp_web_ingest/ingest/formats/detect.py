"""Which document format a response holds: by Content-Type, then by the URL's extension, then by sniffing the body."""

from __future__ import annotations

import json
import posixpath
import re
from typing import Literal
from urllib.parse import unquote, urlsplit

from mcp_web_ingest.errors import UnsupportedContentError
from mcp_web_ingest.ingest.content import looks_binary, looks_like_html

__all__ = ["BINARY_FORMATS", "FORMAT_NAMES", "MEDIA_TYPES", "DocumentFormat", "document_format", "is_indexable_type"]

DocumentFormat = Literal["html", "markdown", "text", "rst", "pdf", "notebook", "llms-full"]
FORMAT_NAMES = "HTML, Markdown, plain text, reStructuredText, PDF and Jupyter notebooks"
BINARY_FORMATS = frozenset({"pdf"})  # kept as bytes; the others are decoded to text
MEDIA_TYPES: dict[str, str] = {  # the media type recorded for a format when the server sent none
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
    "rst": "text/x-rst",
    "pdf": "application/pdf",
    "notebook": "application/x-ipynb+json",
    "llms-full": "text/plain",
}

# Media types that name one format outright.
_BY_TYPE: dict[str, DocumentFormat] = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/mdx": "markdown",
    "text/x-rst": "rst",
    "text/prs.fallenstein.rst": "rst",
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/x-ipynb+json": "notebook",
}
# Media types servers send for files they do not know: the extension, then the body, decide.
_GENERIC_TYPES = frozenset(
    {"text/plain", "application/octet-stream", "binary/octet-stream", "application/json", "application/unknown"}
)
_BY_EXTENSION: dict[str, DocumentFormat] = {
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "rst",
    ".rest": "rst",
    ".pdf": "pdf",
    ".ipynb": "notebook",
}
_LLMS_FULL = re.compile(r"^llms-full(?:\.[\w-]+)?\.(?:txt|md)$", re.IGNORECASE)
_MARKDOWN_HINT = re.compile(r"^(?:#{1,6} \S|```|~~~)", re.MULTILINE)


def _file_name(url: str) -> str:
    try:
        return posixpath.basename(unquote(urlsplit(url).path))
    except ValueError:
        return ""


def _by_extension(name: str) -> DocumentFormat | None:
    lower = name.lower()
    if _LLMS_FULL.match(lower):
        return "llms-full"
    if lower.endswith((".rst.txt", ".rest.txt")):  # Sphinx publishes its sources as _sources/page.rst.txt
        return "rst"
    return _BY_EXTENSION.get(posixpath.splitext(lower)[1])


def _looks_like_notebook(body: bytes) -> bool:
    head = body[:4096].lstrip()
    if not head.startswith(b"{") or b'"cells"' not in body or b'"nbformat"' not in body:
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return True  # a broken notebook is still a notebook: its extractor says what is wrong with it
    return isinstance(data, dict) and "cells" in data


def _sniff(body: bytes, charset: str | None) -> DocumentFormat | None:
    if body.lstrip()[:5] == b"%PDF-":
        return "pdf"
    if looks_binary(body, charset):
        return None
    if looks_like_html(body):
        return "html"
    if _looks_like_notebook(body):
        return "notebook"
    text = body[:65536].decode("utf-8", errors="ignore")
    return "markdown" if _MARKDOWN_HINT.search(text) else "text"


def is_indexable_type(media_type: str | None) -> bool:
    """Whether a Content-Type can hold a document we index (generic types count: the body decides)."""
    return media_type is None or media_type in _BY_TYPE or media_type in _GENERIC_TYPES


def unsupported_message(url: str, media_type: str) -> str:
    """The message for a response whose Content-Type is no format we index."""
    return f"{url} is not a document that can be indexed (Content-Type: {media_type}); indexable: {FORMAT_NAMES}"


def document_format(url: str, status: int, media_type: str | None, body: bytes, charset: str | None) -> DocumentFormat:
    """The format of a response body; UnsupportedContentError when it is none we index or contradicts its label."""
    if media_type is not None and not is_indexable_type(media_type):
        raise UnsupportedContentError(unsupported_message(url, media_type), url=url, status=status)
    declared = _BY_TYPE.get(media_type) if media_type else None
    by_name = _by_extension(_file_name(url))
    if by_name == "llms-full" and declared in (None, "markdown"):
        fmt: DocumentFormat | None = "llms-full"  # served as text/plain or text/markdown
    else:
        fmt = declared or by_name or _sniff(body, charset)
    if fmt is None or (media_type == "application/json" and fmt != "notebook"):
        label = f"Content-Type {media_type}" if media_type else "no Content-Type"
        raise UnsupportedContentError(
            f"{url} sent {label} and its body is no format that can be indexed ({FORMAT_NAMES})", url=url, status=status
        )
    if fmt == "pdf":
        if body.lstrip()[:5] != b"%PDF-":
            raise UnsupportedContentError(
                f"{url} claims to be a PDF but does not start with %PDF-; it cannot be read", url=url, status=status
            )
    elif looks_binary(body, charset):
        raise UnsupportedContentError(
            f"{url} {f'claims to be {media_type}' if media_type else f'is named as {fmt}'} but its body is binary "
            f"data; indexable: {FORMAT_NAMES}",
            url=url,
            status=status,
        )
    return fmt
