"""The MCP server: tools (thin: validate → pipeline → format), the HTTP app with /mcp, /sse, /health and /metrics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from . import __version__
from .config import Settings
from .errors import WebIngestError
from .pipeline import MAX_K, IndexOutcome, SearchOutcome
from .runtime import Runtime, RuntimeHolder

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
Index web pages, then search them. Call `index_web_page` with a page URL to add (or refresh) it; then call
`search` with a natural-language question or exact API names. Results cite the page URL and a deep link to the
nearest heading; quote them when you answer. Use `collection` to keep separate sets of pages apart."""


# --- structured outputs ---------------------------------------------------------------------------------------


class IndexResult(BaseModel):
    """Outcome of indexing one page."""

    page_id: int = Field(description="Id of the stored page")
    url: str = Field(description="The page's normalised URL (after redirects)")
    title: str
    collection: str
    chunks: int = Field(description="Number of searchable chunks stored for the page")
    unchanged: bool = Field(
        description="True when the content was identical to the stored version (nothing re-embedded)"
    )
    reused_vectors: int = Field(description="Chunks whose embedding was reused from the previous version")
    timings_ms: dict[str, float] = Field(description="Milliseconds spent per stage")


class LegOut(BaseModel):
    """What one retrieval leg said of a result."""

    leg: str = Field(description="dense (semantic) or lexical (full-text)")
    rank: int = Field(description="1-based rank the leg gave the chunk")
    score: float = Field(description="The leg's raw score")


class SearchHitOut(BaseModel):
    """One result, sized for a model's context."""

    rank: int
    url: str
    deep_link: str = Field(description="URL with the fragment of the nearest heading; cite this")
    title: str = Field(description="Page title")
    section: str = Field(description="Section path: Page title › Heading › Subheading")
    text: str = Field(description="The matching chunk in markdown (trimmed to the budget)")
    score: float = Field(description="Fused reciprocal-rank score; higher is better")
    legs: list[LegOut] = Field(description="Ranks each retrieval leg gave this chunk")
    collection: str


class SearchResult(BaseModel):
    """Results of a search."""

    query: str
    mode: str
    legs_used: list[str]
    took_ms: float
    truncated: bool = Field(description="True when result texts were trimmed to fit max_chars")
    notes: list[str] = Field(default_factory=list, description="Caveats about how this search was served")
    results: list[SearchHitOut]


class HealthResult(BaseModel):
    """Component status, counts and configuration of the server."""

    status: Literal["ok", "degraded", "error"]
    version: str
    pipeline: str
    components: dict[str, Any]
    counts: dict[str, int]
    embedding: dict[str, Any]


def index_result(o: IndexOutcome) -> IndexResult:
    """Tool output for an IndexOutcome."""
    return IndexResult(
        page_id=o.page_id, url=o.url, title=o.title, collection=o.collection, chunks=o.chunk_count,
        unchanged=o.unchanged, reused_vectors=o.reused_vectors, timings_ms=o.timings_ms,
    )  # fmt: skip


def search_result(o: SearchOutcome) -> SearchResult:
    """Tool output for a SearchOutcome."""
    return SearchResult(
        query=o.query,
        mode=o.mode,
        legs_used=list(o.legs_used),
        took_ms=o.took_ms,
        truncated=o.truncated,
        notes=list(o.notes),
        results=[
            SearchHitOut(
                rank=i,
                url=h.url,
                deep_link=h.deep_link,
                title=h.title,
                section=" › ".join(h.section_path),
                text=h.text,
                score=round(h.score, 6),
                collection=h.collection,
                legs=[LegOut(leg=leg.leg, rank=leg.rank, score=round(leg.score, 6)) for leg in h.legs],
            )
            for i, h in enumerate(o.hits, start=1)
        ],
    )


# --- server -------------------------------------------------------------------------------------------------


def create_server(settings: Settings, holder: RuntimeHolder | None = None) -> MCPServer:
    """Build the MCP server; every session shares the holder's runtime (opened on first use)."""
    holder = holder or RuntimeHolder(settings)

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
    )

    def runtime_of(ctx: Context) -> Runtime:
        return ctx.request_context.lifespan_context  # type: ignore[no-any-return]

    @mcp.tool(
        title="Index a web page",
        description=(
            "Fetch one web page (http/https), extract its main content as markdown (code blocks and headings kept), "
            "split it into sections, embed them and store them so `search` can find them. Re-indexing an unchanged "
            "page is cheap (nothing is re-embedded); a changed page replaces its old version. Returns the page id, "
            "title and number of chunks. Fails with a clear message for unreachable hosts, HTTP errors, non-HTML "
            "content or over-size pages; nothing is stored then."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
        ),
    )
    async def index_web_page(
        url: Annotated[str, Field(description="Absolute http:// or https:// URL of the page to index")],
        ctx: Context,
        collection: Annotated[
            str | None,
            Field(description="Named set of pages to add it to (letters, digits, . _ -); default 'default'"),
        ] = None,
    ) -> IndexResult:
        runtime = runtime_of(ctx)

        async def progress(done: float, total: float | None, message: str | None) -> None:
            await ctx.report_progress(done, total, message)

        try:
            return index_result(await runtime.pipeline.index_page(url, collection, progress))
        except WebIngestError as exc:
            raise ToolError(str(exc)) from exc

    @mcp.tool(
        title="Search indexed pages",
        description=(
            "Search the pages indexed with `index_web_page`. Write the query as a question or keywords; exact API or "
            "function names work too. Hybrid mode combines semantic (dense) and full-text (lexical) retrieval. Each "
            "result gives the page URL, a deep link to the nearest heading, the section path and the matching text, "
            "trimmed so all results fit in `max_chars`. Cite the deep links."
        ),
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
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
            Literal["hybrid", "dense", "lexical"] | None,
            Field(description="Retrieval mode: hybrid (default), dense (semantic only) or lexical (full-text only)"),
        ] = None,
        max_chars: Annotated[
            int | None, Field(description="Character budget for all result texts together (default 12000)")
        ] = None,
    ) -> SearchResult:
        runtime = runtime_of(ctx)
        try:
            return search_result(await runtime.pipeline.search(query, k, collection, url_prefix, mode, max_chars))
        except WebIngestError as exc:
            raise ToolError(str(exc)) from exc

    @mcp.tool(
        title="Server health",
        description=(
            "Report the status of each component (database, embedding model, optional services), the pipeline in "
            "use, how many pages and chunks are indexed, the embedding model and its dimension, and the version."
        ),
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def health(ctx: Context) -> HealthResult:
        return HealthResult(**await runtime_of(ctx).health())

    return mcp


def create_http_app(settings: Settings) -> Starlette:
    """One ASGI app: streamable HTTP at /mcp, legacy SSE at /sse + /messages/, GET /health and GET /metrics."""
    holder = RuntimeHolder(settings)
    mcp = create_server(settings, holder)

    async def health_route(_: Request) -> Response:
        if holder.runtime is None:
            return JSONResponse({"status": "error", "detail": "starting"}, status_code=503)
        report = await holder.runtime.health()
        return JSONResponse(report, status_code=200 if report["status"] != "error" else 503)

    async def metrics_route(_: Request) -> Response:
        if holder.runtime is None:
            return Response("starting\n", status_code=503)
        return Response(holder.runtime.metrics.render(), media_type=holder.runtime.metrics.content_type)

    mcp.custom_route("/health", methods=["GET"])(health_route)
    mcp.custom_route("/metrics", methods=["GET"])(metrics_route)
    app = mcp.streamable_http_app(host=settings.mcp_host)
    sse = mcp.sse_app(host=settings.mcp_host)
    for route in sse.routes:
        if (isinstance(route, Route) and route.path == "/sse") or (
            isinstance(route, Mount) and route.path == "/messages"
        ):
            app.router.routes.append(route)

    session_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Starlette) -> AsyncIterator[Any]:
        # The process holds the runtime for its whole life, so start-up errors surface before serving.
        async with holder.acquire(), session_lifespan(a) as state:
            yield state

    app.router.lifespan_context = lifespan
    return app
