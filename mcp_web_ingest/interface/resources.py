"""Every indexed page as an MCP resource, and a summary resource per collection.

    webingest://{collection}/page{?url}   one stored page as Markdown, with its provenance in a front matter
    webingest://{collection}/pages        the collection's pages, each with its resource URI

`resources/list` pages through the collection summaries, then every page, PAGE_SIZE at a time (the cursor is
opaque: a base64 keyset position). Subscriptions are in resource_updates.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import ResourceSecurity
from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    Annotations,
    ListResourcesResult,
    PaginatedRequestParams,
    Resource,
)

from mcp_web_ingest.errors import InvalidInputError, WebIngestError
from mcp_web_ingest.ingest.sanitize import WEB_SCHEMES, clean_text, safe_url
from mcp_web_ingest.ingest.urls import normalize_url, redact_credentials, validate_url
from mcp_web_ingest.interface.reading import read_result
from mcp_web_ingest.interface.resource_updates import register_resource_updates
from mcp_web_ingest.interface.resource_uris import PAGE_TEMPLATE, SUMMARY_TEMPLATE, page_uri, summary_uri
from mcp_web_ingest.interface.sdk_hooks import lowlevel
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.storage.interfaces import Directory
from mcp_web_ingest.storage.records import StoredDocument, validate_collection

__all__ = ["PAGE_SIZE", "RESOURCE_NOT_FOUND", "list_resources", "register_resources", "render_page"]

PAGE_SIZE = 100  # resources per resources/list response
SUMMARY_MAX = 500  # pages a collection summary lists (resources/list has them all)
RESOURCE_MAX_CHARS = 200_000  # a page resource longer than this ends with how to read on (read_page)
RESOURCE_NOT_FOUND = -32002  # the MCP specification's error code for an unknown resource
MARKDOWN = "text/markdown"
_CURSOR = re.compile(r"^([cp]):(\d{1,19})$")


# --- reading ------------------------------------------------------------------------------------------------------


def _front_matter(fields: dict[str, Any]) -> str:
    """A YAML front matter; each value JSON-quoted (valid YAML whatever the title holds)."""
    lines = [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in fields.items() if v is not None]
    return "---\n" + "\n".join(lines) + "\n---\n\n"


def render_page(doc: StoredDocument) -> str:
    """A stored page as Markdown: provenance first, then its sections (cut at RESOURCE_MAX_CHARS)."""
    shown = read_result(doc, 0, RESOURCE_MAX_CHARS)
    head = _front_matter(
        {
            "title": shown.title,
            "url": shown.url,
            "collection": shown.collection,
            "page_id": shown.page_id,
            "indexed_at": shown.indexed_at,
            "fetched_at": doc.crawled_at.isoformat(),
            "format": shown.content_format,
            "read_from": safe_url(shown.content_url, schemes=WEB_SCHEMES, escape=False) if shown.content_url else None,
            "rebuilt_from_chunks": shown.from_chunks or None,
        }
    )
    tail = ""
    if shown.next_section is not None:
        tail = (
            f"\n\n[Cut at {RESOURCE_MAX_CHARS} characters: read on with read_page(url={shown.url!r}, "
            f"collection={shown.collection!r}, from_section={shown.next_section}).]"
        )
    return head + shown.markdown + tail


def _not_found(message: str, uri: str) -> MCPError:
    return MCPError(code=RESOURCE_NOT_FOUND, message=message, data={"uri": uri})


def _store_failure(exc: WebIngestError, uri: str) -> MCPError:
    return MCPError(code=INTERNAL_ERROR, message=redact_credentials(str(exc)), data={"uri": uri})


def _summary(name: str, pages: list[tuple[str, str, str]], more: bool) -> str:
    lines = [f"# Collection `{name}`", ""]
    if not pages:
        lines.append("No pages are indexed in this collection yet: add some with index_web_page.")
    for title, url, uri in pages:
        lines.append(f"- {title.replace('[', '(').replace(']', ')')}: <{url}> — resource `{uri}`")
    if more:
        lines += ["", f"Only the first {SUMMARY_MAX} pages are listed: page through resources/list for the rest."]
    return "\n".join(lines) + "\n"


# --- registration -------------------------------------------------------------------------------------------------


def _cursor(phase: str, after: int) -> str:
    return base64.urlsafe_b64encode(f"{phase}:{after}".encode()).decode()


def _read_cursor(cursor: str | None) -> tuple[str, int]:
    if not cursor:
        return "c", 0
    try:
        found = _CURSOR.match(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (binascii.Error, UnicodeError, ValueError):
        found = None
    if found is None:
        raise MCPError(code=INVALID_PARAMS, message="Invalid cursor: pass a nextCursor from resources/list unchanged.")
    return found[1], int(found[2])


async def list_resources(directory: Directory, cursor: str | None) -> ListResourcesResult:
    """One page of resources: collection summaries first, then pages, in id order."""
    phase, after = _read_cursor(cursor)
    out: list[Resource] = []
    if phase == "c":
        collections = await directory.collections_after(after, PAGE_SIZE + 1)
        for c in collections[:PAGE_SIZE]:
            out.append(
                Resource(
                    uri=summary_uri(c.name),
                    name=f"{c.name} (collection)",
                    title=f"Pages of collection {c.name}",
                    description=f"The {c.pages} pages indexed in collection {c.name}, each with its resource URI",
                    mime_type=MARKDOWN,
                )
            )
        if len(collections) > PAGE_SIZE:
            return ListResourcesResult(
                resources=out, next_cursor=_cursor("c", collections[PAGE_SIZE - 1].collection_id)
            )
        after = 0
    room = PAGE_SIZE - len(out)
    if room == 0:
        return ListResourcesResult(resources=out, next_cursor=_cursor("p", after))
    pages = await directory.pages_after(after, room + 1)
    for p in pages[:room]:
        url = safe_url(p.url, schemes=WEB_SCHEMES, escape=False) or ""
        out.append(
            Resource(
                uri=page_uri(p.collection, p.url),
                name=url,
                title=clean_text(p.title) or url,
                description=f"Indexed page in collection {p.collection}",
                mime_type=MARKDOWN,
                annotations=Annotations(last_modified=p.indexed_at.isoformat()),
            )
        )
    more = len(pages) > room
    return ListResourcesResult(resources=out, next_cursor=_cursor("p", pages[room - 1].page_id) if more else None)


def register_resources(mcp: MCPServer, runtime_of: Callable[[Context], Runtime], bus: SubscriptionBus) -> None:
    """Add the page and summary templates, paginated resources/list, and resource updates (on ``bus``)."""
    server = lowlevel(mcp)

    @mcp.resource(
        PAGE_TEMPLATE,
        name="page",
        title="Indexed page",
        description=(
            "A page stored by index_web_page as Markdown, with its title, URL and provenance (collection, when it "
            "was indexed and last fetched, the format it was read from) in a front matter. `url` is the page's URL "
            "(percent-encoded); resources/list and the collection summary give each page's exact URI."
        ),
        mime_type=MARKDOWN,
        security=ResourceSecurity(exempt_params={"url"}),  # a web URL, never a file path: validated below
    )
    async def page(collection: str, ctx: Context, url: str = "") -> str:
        uri = page_uri(collection, url)
        try:
            name = validate_collection(collection)
            wanted = normalize_url(validate_url(url.partition("#")[0]))
        except InvalidInputError as exc:
            raise MCPError(code=INVALID_PARAMS, message=f"{exc} (in {uri})", data={"uri": uri}) from exc
        try:
            doc = await runtime_of(ctx).store.catalog.read_document(url=wanted, collection=name)
        except WebIngestError as exc:
            raise _store_failure(exc, uri) from exc
        if doc is None:
            raise _not_found(
                f"{wanted} is not indexed in collection {name!r}. List indexed pages with resources/list or read "
                f"{summary_uri(name)}; index the page with index_web_page.",
                uri,
            )
        return render_page(doc)

    @mcp.resource(
        SUMMARY_TEMPLATE,
        name="collection",
        title="Pages of a collection",
        description=f"The pages of a collection (the first {SUMMARY_MAX}), each with its title, URL and resource URI.",
        mime_type=MARKDOWN,
    )
    async def collection_pages(collection: str, ctx: Context) -> str:
        uri = summary_uri(collection)
        try:
            name = validate_collection(collection)
        except InvalidInputError as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc), data={"uri": uri}) from exc
        directory = runtime_of(ctx).directory
        try:
            if not await directory.collection_exists(name):
                raise _not_found(f"There is no collection {name!r}; list_sources names the collections.", uri)
            pages = await directory.pages_after(0, SUMMARY_MAX + 1, name)
        except WebIngestError as exc:
            raise _store_failure(exc, uri) from exc
        rows = [
            (
                clean_text(p.title) or p.url,
                safe_url(p.url, schemes=WEB_SCHEMES, escape=False) or "",
                page_uri(name, p.url),
            )
            for p in pages[:SUMMARY_MAX]
        ]
        return _summary(name, rows, len(pages) > SUMMARY_MAX)

    async def handle_list(
        ctx: ServerRequestContext[Runtime, Any], params: PaginatedRequestParams
    ) -> ListResourcesResult:
        try:
            return await list_resources(ctx.lifespan_context.directory, params.cursor)
        except WebIngestError as exc:
            raise MCPError(code=INTERNAL_ERROR, message=redact_credentials(str(exc))) from exc

    server.add_request_handler("resources/list", PaginatedRequestParams, handle_list)
    register_resource_updates(mcp, bus)
