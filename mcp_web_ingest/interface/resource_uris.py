"""The URIs of this server's resources: a page of a collection, and a collection's summary."""

from __future__ import annotations

from mcp.shared.uri_template import UriTemplate

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.ingest.urls import normalize_url, validate_url
from mcp_web_ingest.storage.records import validate_collection

__all__ = ["PAGE_TEMPLATE", "SUMMARY_TEMPLATE", "canonical_uri", "page_uri", "summary_uri"]

PAGE_TEMPLATE = "webingest://{collection}/page{?url}"
SUMMARY_TEMPLATE = "webingest://{collection}/pages"
_PAGE = UriTemplate.parse(PAGE_TEMPLATE)
_SUMMARY = UriTemplate.parse(SUMMARY_TEMPLATE)


def page_uri(collection: str, url: str) -> str:
    """The resource URI of a stored page."""
    return _PAGE.expand({"collection": collection, "url": url})


def summary_uri(collection: str) -> str:
    """The resource URI of a collection's summary."""
    return _SUMMARY.expand({"collection": collection})


def canonical_uri(uri: str) -> str | None:
    """The URI as this server writes it, when it names a page or a collection summary; else None."""
    for template, render in ((_SUMMARY, summary_uri), (_PAGE, page_uri)):
        found = template.match(uri)
        if found is not None:
            try:
                name = validate_collection(str(found["collection"]))
                if template is _SUMMARY:
                    return render(name)
                return page_uri(name, normalize_url(validate_url(str(found.get("url", "")))))
            except InvalidInputError:
                return None
    return None
