"""The MCP server: tools (thin: validate → pipeline → format), the HTTP app with /mcp, /sse, /health and /metrics."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_web_ingest import __version__
from mcp_web_ingest.config import Settings
from mcp_web_ingest.crawl.manager import CrawlStatus
from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.interface.auth import guard
from mcp_web_ingest.interface.completions import register_completions
from mcp_web_ingest.interface.indexing import IndexOrder, index_one, start_crawl
from mcp_web_ingest.interface.mcp_logging import register_logging
from mcp_web_ingest.interface.prompts import register_prompts
from mcp_web_ingest.interface.reading_tools import register_reading_tools
from mcp_web_ingest.interface.resources import register_resources
from mcp_web_ingest.interface.schemas import (
    READ_ONLY,
    CrawlJobResult,
    DeleteResult,
    HealthResult,
    IndexResult,
    SearchResult,
    SourcesResult,
    crawl_index_result,
    job_result,
    search_result,
    sources_result,
)
from mcp_web_ingest.interface.tool_errors import tool_errors
from mcp_web_ingest.runtime import Runtime, RuntimeHolder
from mcp_web_ingest.search.request import MAX_K, SearchRequest
from mcp_web_ingest.storage.records import validate_collection

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
Index web pages or whole documentation sites, then search them. Call `index_web_page` with a URL to add (or
refresh) one page; give `max_depth`/`max_pages` to crawl a site (it runs as a background job: follow it with
`crawl_status`). Then call `search` with a natural-language question or exact API names. Results cite the page URL
and a deep link to the nearest heading; quote them when you answer. Use `collection` to keep sets of pages apart;
`list_sources`, `refresh_source` and `delete_source` manage what is indexed."""


def _check_wait(wait_seconds: float) -> None:
    if not 0 <= wait_seconds <= 300:
        raise InvalidInputError(f"wait_seconds must be between 0 and 300 (got {wait_seconds})")


# --- server -------------------------------------------------------------------------------------------------


def serving_holder(settings: Settings) -> RuntimeHolder:
    """The runtime holder of a server process: while its runtime is open, METRICS_PORT (when set) serves /metrics
    behind the same token and Host checks as the main app."""
    metrics_guard = functools.partial(guard, settings=settings, bind_host=settings.mcp_host, metrics_only=True)
    return RuntimeHolder(settings, metrics_guard=metrics_guard)


def create_server(settings: Settings, holder: RuntimeHolder | None = None) -> MCPServer:
    """Build the MCP server; every session shares the holder's runtime (opened on first use)."""
    holder = holder or serving_holder(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[Runtime]:
        async with holder.acquire() as runtime:
            yield runtime

    mcp = MCPServer(
        name="mcp-web-ingest",
        title="Web Ingest",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level=settings.log_level.upper(),  # type: ignore[arg-type]
        subscriptions=(bus := InMemorySubscriptionBus()),
    )

    def runtime_of(ctx: Context) -> Runtime:
        return ctx.request_context.lifespan_context  # type: ignore[no-any-return]

    async def report(ctx: Context, status: CrawlStatus) -> None:
        total = status.counts["discovered"] or None
        await ctx.report_progress(status.counts["fetched"] + status.counts["skipped"], total, status.summary())

    @mcp.tool(
        title="Index a web page or crawl a site",
        description=(
            "Fetch a web page (http/https), extract its main content as markdown (code blocks and headings kept), "
            "split it into sections, embed and store them so `search` can find them. With the defaults one page is "
            "indexed and the result comes back directly. Give max_depth > 0 or max_pages > 1 to crawl a site: links, "
            "sitemap.xml and llms.txt are followed within scope, robots.txt is respected, and the crawl runs as a "
            "persisted background job; this call waits up to wait_seconds, sending progress, then returns the "
            "finished summary or the job id to follow with crawl_status. Re-indexing is incremental: unchanged pages "
            "(HTTP 304 or same content) are not re-embedded. Reads HTML, Markdown (a page's Markdown twin is "
            "preferred), plain text, reStructuredText, PDF (deep links url#page=N), Jupyter notebooks and "
            "llms-full.txt (split into its pages). Private sites: pass auth_profile, a name from the server's "
            "AUTH_PROFILES_FILE. Errors (unreachable host, HTTP errors, unreadable formats, over-size) come back as "
            "clear messages; nothing half-stored."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
        ),
    )
    @tool_errors
    async def index_web_page(
        url: Annotated[str, Field(description="Absolute http:// or https:// URL of the page (or crawl start page)")],
        ctx: Context,
        max_depth: Annotated[int, Field(description="Link levels to follow from the start page (0 = just it)")] = 0,
        max_pages: Annotated[int, Field(description="Most pages the crawl visits (1 = just the start page)")] = 1,
        include: Annotated[
            list[str] | None,
            Field(description="RE2 regexes (≤ 100): only crawl URLs matching one (overrides default exclusions)"),
        ] = None,
        exclude: Annotated[
            list[str] | None, Field(description="RE2 regexes (≤ 100): never crawl URLs matching one")
        ] = None,
        scope: Annotated[
            Literal["path", "host", "domain"],
            Field(description="path: under the start URL's directory (default); host: same host; domain: same site"),
        ] = "path",
        use_sitemap: Annotated[bool, Field(description="Also discover pages from sitemap.xml and llms.txt")] = True,
        respect_robots: Annotated[bool, Field(description="Obey robots.txt (on by default)")] = True,
        force: Annotated[bool, Field(description="Re-fetch and re-chunk even pages that did not change")] = False,
        wait_seconds: Annotated[
            float, Field(description="Crawls: how long to wait for the job before returning its id (0-300)")
        ] = 20,
        collection: Annotated[
            str | None,
            Field(description="Named set of pages to add to (letters, digits, . _ -); default 'default'"),
        ] = None,
        auth_profile: Annotated[
            str | None,
            Field(description="Name of a login in the server's AUTH_PROFILES_FILE, for private pages (never shown)"),
        ] = None,
        version: Annotated[
            str | None,
            Field(description="Documentation version these pages belong to (e.g. 5.2); default: read from the URL"),
        ] = None,
        refresh_interval: Annotated[
            str | None,
            Field(
                description="Refresh these pages by itself this often (30m, 12h, 1d, 1w) or 'off'; "
                "default: REFRESH_INTERVAL"
            ),
        ] = None,
    ) -> IndexResult:
        runtime = runtime_of(ctx)
        _check_wait(wait_seconds)
        order = IndexOrder(
            url, max_depth, max_pages, tuple(include or ()), tuple(exclude or ()), scope, use_sitemap,
            respect_robots, force, collection, auth_profile, version, refresh_interval,
        )  # fmt: skip
        if order.single:

            async def progress(done: float, total: float | None, message: str | None) -> None:
                await ctx.report_progress(done, total, message)

            return await index_one(runtime, order, progress)
        started = await start_crawl(runtime, order)
        status = await runtime.crawler.wait(started.job_id, wait_seconds, lambda s: report(ctx, s))
        return crawl_index_result(status).model_copy(update={"refresh_interval_s": started.refresh_interval_s})

    @mcp.tool(
        title="Crawl job status",
        description=(
            "Report a crawl job started by index_web_page or refresh_source: state (queued, running, done, partial, "
            "failed, cancelled), counts of discovered/indexed/unchanged/failed/skipped pages, pages per second, ETA, "
            "and the failed URLs with their reasons. Optionally wait up to wait_seconds for it to finish."
        ),
        annotations=READ_ONLY,
    )
    @tool_errors
    async def crawl_status(
        job_id: Annotated[str, Field(description="The job id returned by index_web_page or refresh_source")],
        ctx: Context,
        wait_seconds: Annotated[float, Field(description="Wait up to this long for the job to finish (0-300)")] = 0,
    ) -> CrawlJobResult:
        runtime = runtime_of(ctx)
        _check_wait(wait_seconds)
        return job_result(await runtime.crawler.wait(job_id, wait_seconds, lambda s: report(ctx, s)))

    @mcp.tool(
        title="Cancel a crawl",
        description="Stop a running crawl job. Pages already indexed stay searchable.",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    @tool_errors
    async def cancel_crawl(
        job_id: Annotated[str, Field(description="The job id returned by index_web_page or refresh_source")],
        ctx: Context,
    ) -> CrawlJobResult:
        return job_result(await runtime_of(ctx).crawler.cancel(job_id))

    @mcp.tool(
        title="List indexed sources",
        description=(
            "List what is indexed, per collection and domain: number of pages and chunks, when it was last crawled, "
            "and the state of the newest crawl job there."
        ),
        annotations=READ_ONLY,
    )
    @tool_errors
    async def list_sources(ctx: Context) -> SourcesResult:
        runtime = runtime_of(ctx)
        return sources_result(await runtime.store.catalog.list_sources(), await runtime.scheduler.store.all())

    @mcp.tool(
        title="Delete indexed pages",
        description=(
            "Delete indexed pages with their chunks and vectors: a whole collection, or only one domain or URL "
            "prefix in it. Cannot be undone (re-index to get them back)."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    @tool_errors
    async def delete_source(
        ctx: Context,
        collection: Annotated[str | None, Field(description="Collection to delete from; default 'default'")] = None,
        domain: Annotated[str | None, Field(description="Only pages of this host, e.g. docs.python.org")] = None,
        url_prefix: Annotated[str | None, Field(description="Only pages whose URL starts with this")] = None,
    ) -> DeleteResult:
        name = validate_collection(collection)
        deleted = await runtime_of(ctx).store.delete_source(name, domain, url_prefix)
        return DeleteResult(collection=name, domain=domain, url_prefix=url_prefix, pages_deleted=deleted)

    @mcp.tool(
        title="Refresh indexed pages",
        description=(
            "Re-crawl the pages already indexed in a collection (optionally only under a URL prefix) with change "
            "detection: unchanged pages cost a conditional request, changed pages are re-indexed (unchanged chunks "
            "keep their vectors), pages that now return 404/410 are removed. Runs as a crawl job like index_web_page."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
        ),
    )
    @tool_errors
    async def refresh_source(
        ctx: Context,
        collection: Annotated[str | None, Field(description="Collection to refresh; default 'default'")] = None,
        url_prefix: Annotated[str | None, Field(description="Only pages whose URL starts with this")] = None,
        wait_seconds: Annotated[float, Field(description="How long to wait before returning the job id (0-300)")] = 20,
        auth_profile: Annotated[
            str | None, Field(description="Login from AUTH_PROFILES_FILE for private pages (sent where it applies)")
        ] = None,
        refresh_interval: Annotated[
            str | None,
            Field(description="Also refresh these pages by itself this often from now on (30m, 12h, 1d) or 'off'"),
        ] = None,
    ) -> CrawlJobResult:
        runtime = runtime_of(ctx)
        _check_wait(wait_seconds)
        job_id = await runtime.crawler.refresh(collection, url_prefix, auth_profile)
        if refresh_interval is not None:
            name = validate_collection(collection)
            await runtime.scheduler.apply(name, url_prefix or "", refresh_interval, auth_profile)
        return job_result(await runtime.crawler.wait(job_id, wait_seconds, lambda s: report(ctx, s)))

    @mcp.tool(
        title="Search indexed pages",
        description=(
            "Search the pages indexed with `index_web_page`. Write the query as a question or keywords; exact API or "
            "function names work too; quotes and -word are honoured. Hybrid mode ranks pages by fusing semantic "
            "(dense), BM25 (lexical) and, when configured, learned-sparse (SPLADE) retrieval, then a cross-encoder "
            "reranks when one is configured. Each result gives the page URL, a deep link to the nearest heading, the "
            "section path and the matching text, trimmed so all results fit in `max_chars`; a page's other matching "
            "sections are listed in `also_matched`. Cite the deep links."
        ),
        annotations=READ_ONLY,
    )
    @tool_errors
    async def search(
        query: Annotated[str, Field(description="What to look for: a question, keywords or an exact API name")],
        ctx: Context,
        k: Annotated[
            int | None, Field(description=f"Number of results, 1-{MAX_K}; default RERANK_FINAL_K (10)")
        ] = None,
        collection: Annotated[str | None, Field(description="Only search this collection")] = None,
        url_prefix: Annotated[
            str | None,
            Field(description="Only pages whose URL starts with this, e.g. https://docs.python.org/3/library/"),
        ] = None,
        mode: Annotated[
            Literal["hybrid", "dense", "lexical", "sparse"] | None,
            Field(
                description="hybrid (default: every leg fused), or one leg alone for debugging: dense (semantic), "
                "lexical (BM25), sparse (SPLADE, when configured)"
            ),
        ] = None,
        max_chars: Annotated[
            int | None, Field(description="Character budget for all result texts together (default 12000)")
        ] = None,
        rerank: Annotated[
            bool | None,
            Field(description="Rerank candidates with the cross-encoder (default: on when a reranker is configured)"),
        ] = None,
        symbol: Annotated[
            str | None,
            Field(description="Only chunks defining or using this code symbol, e.g. asyncio.gather or useState"),
        ] = None,
        version: Annotated[
            str | None,
            Field(
                description="Documentation version: '5.2', a range ('5.x', '>=4.2,<5'), 'latest' (default: the "
                "newest of each collection; unlabelled pages always match) or 'all'"
            ),
        ] = None,
    ) -> SearchResult:
        runtime = runtime_of(ctx)
        request = SearchRequest.create(
            runtime.settings, query, k, collection, url_prefix, mode, max_chars, rerank, symbol, version
        )
        return search_result(await runtime.pipeline.search(request))

    register_reading_tools(mcp, runtime_of)
    register_resources(mcp, runtime_of, bus)
    register_prompts(mcp)
    register_completions(mcp)
    register_logging(mcp)

    @mcp.tool(
        title="Server health",
        description=(
            "Report the status of each component (database, embedding model, optional services), the pipeline in "
            "use, how many pages and chunks are indexed, the embedding model and its dimension, and the version."
        ),
        annotations=READ_ONLY,
    )
    @tool_errors
    async def health(ctx: Context) -> HealthResult:
        return HealthResult(**await runtime_of(ctx).health())

    return mcp
