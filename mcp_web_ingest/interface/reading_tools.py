"""The tools that read the index without changing it or fetching anything: read_page and what_changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.interface.changes import WhatChangedResult, parse_since, what_changed_result
from mcp_web_ingest.interface.reading import ReadPageResult, find_section, load_document, read_result
from mcp_web_ingest.interface.schemas import READ_ONLY
from mcp_web_ingest.interface.tool_errors import tool_errors
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.storage.records import validate_collection

__all__ = ["register_reading_tools"]


def register_reading_tools(mcp: MCPServer, runtime_of: Callable[[Context], Runtime]) -> None:
    """Add read_page and what_changed to the server."""

    @mcp.tool(
        title="Read an indexed page",
        description=(
            "Read a page stored by `index_web_page` as markdown, to read around a search result: the whole page, or "
            "from one section on (pass a result's deep link as `url`, or a section's anchor or heading as "
            "`section`), within `max_chars`. The outline lists every section with its index; pass `next_section` "
            "as `from_section` to read on. Nothing is fetched from the network."
        ),
        annotations=READ_ONLY,
    )
    @tool_errors
    async def read_page(
        ctx: Context,
        url: Annotated[
            str | None, Field(description="The page URL, or a search result's deep link (URL#anchor)")
        ] = None,
        page_id: Annotated[int | None, Field(description="The page's id, instead of its URL")] = None,
        collection: Annotated[
            str | None, Field(description="The collection holding the page; default: its latest indexed copy")
        ] = None,
        section: Annotated[
            str | None, Field(description="Start at this section: its anchor (as in a deep link) or its heading")
        ] = None,
        from_section: Annotated[
            int | None, Field(description="Start at this outline index (a previous call's next_section)")
        ] = None,
        max_chars: Annotated[
            int, Field(description="Character budget for the markdown returned", ge=500, le=100_000)
        ] = 12_000,
    ) -> ReadPageResult:
        if section is not None and from_section is not None:
            raise InvalidInputError("Give section or from_section, not both.")
        doc, fragment = await load_document(runtime_of(ctx).store.catalog, url, page_id, collection)
        wanted = section if section is not None else fragment if from_section is None else None
        start = find_section(doc, wanted) if wanted else from_section or 0
        return read_result(doc, start, max_chars)

    @mcp.tool(
        title="What changed in the docs",
        description=(
            "List the pages added, changed and removed since a time (ISO 8601, or a span back from now such as 7d "
            "or 24h; default: since the last crawl or refresh started), and for each changed page the sections whose "
            "text changed, with deep links: to answer 'what is new in the docs since last week'. Reads the index's "
            "change log (refresh_source or a crawl updates it); nothing is fetched."
        ),
        annotations=READ_ONLY,
    )
    @tool_errors
    async def what_changed(
        ctx: Context,
        since: Annotated[
            str | None, Field(description="ISO 8601 date/time, or 90m / 24h / 7d / 2w back from now")
        ] = None,
        collection: Annotated[str | None, Field(description="Only this collection; default: all")] = None,
        url_prefix: Annotated[str | None, Field(description="Only pages whose URL starts with this")] = None,
        limit: Annotated[int, Field(description="Most pages to list", ge=1, le=1000)] = 100,
    ) -> WhatChangedResult:
        runtime = runtime_of(ctx)
        coll = validate_collection(collection) if collection else None
        start = parse_since(since) if since else await runtime.jobs.last_started(coll)
        changes = await runtime.store.catalog.changes_since(coll, url_prefix, start) if start else []
        return what_changed_result(changes, start, "given" if since else "last refresh", limit)
