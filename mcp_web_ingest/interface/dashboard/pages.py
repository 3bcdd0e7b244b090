"""The dashboard's pages (GET): sources, index form and jobs, a crawl job, the search playground, health, login."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import InvalidInputError, NotReadyError, WebIngestError
from mcp_web_ingest.ingest.urls import redact_credentials
from mcp_web_ingest.interface.auth import UI_COOKIE, ui_session_valid
from mcp_web_ingest.interface.dashboard.render import render
from mcp_web_ingest.interface.schemas import SourceOut, job_result, search_result, sources_result
from mcp_web_ingest.metrics import Metrics
from mcp_web_ingest.runtime import Runtime, RuntimeHolder
from mcp_web_ingest.search.request import MAX_K, SearchRequest

__all__ = ["DashboardPages", "error_text", "key_metrics", "parse_int"]

# (title, metric family): what the Health page shows of /metrics.
KEY_METRICS = (
    ("Searches", "web_queries"),
    ("Search time, mean ms", "web_query_duration_seconds"),
    ("Pages indexed", "web_pages_indexed"),
    ("Chunks written", "web_chunks_generated"),
    ("Vectors reused", "web_chunks_embedding_reused"),
    ("HTTP fetches", "web_fetch"),
    ("Crawl jobs running", "web_crawl_jobs_running"),
    ("Scheduled refreshes", "web_scheduled_refreshes"),
    ("SPLADE requests", "splade_requests"),
    ("Rerank requests", "rerank_requests"),
    ("Open MCP sessions", "mcp_sessions_open"),
    ("Event loop lag, mean ms", "event_loop_lag_seconds"),
)
INDEX_DEFAULTS = {
    "url": "", "max_depth": 0, "max_pages": 1, "scope": "path", "collection": "", "include": "", "exclude": "",
    "force": False,
}  # fmt: skip


def error_text(exc: BaseException) -> str:
    """What the dashboard says of a failure: the error's own message (credentials removed)."""
    return redact_credentials(str(exc)) if isinstance(exc, WebIngestError) else f"internal error ({type(exc).__name__})"


def key_metrics(metrics: Metrics) -> list[tuple[str, list[tuple[str, str]]]]:
    """The key metrics as (title, [(labels, value)]): counters and gauges per label set, histograms as mean ms."""
    families = {family.name: family for family in metrics.registry.collect()}
    rows: list[tuple[str, list[tuple[str, str]]]] = []
    for title, name in KEY_METRICS:
        family = families.get(name)
        if family is None:
            continue
        values: list[tuple[str, str]] = []
        if family.type == "histogram":
            sums = {_labels(s.labels): s.value for s in family.samples if s.name.endswith("_sum")}
            for s in family.samples:
                if s.name.endswith("_count") and s.value:
                    values.append((_labels(s.labels), f"{1000 * sums[_labels(s.labels)] / s.value:.1f}"))
        else:
            values = [(_labels(s.labels), f"{s.value:g}") for s in family.samples if not s.name.endswith("_created")]
        if values:
            rows.append((title, values))
    return rows


def _labels(labels: dict[str, str]) -> str:
    return " ".join(v for _, v in sorted(labels.items()))


# Optional components a server may run without, and the settings that turn each on.
OPTIONAL_COMPONENTS = {
    "splade": "SPLADE_URL (a service) or SPLADE_MODEL_DIR (in-process)",
    "reranker": "RERANKER_URL (a TEI /rerank service)",
    "crawl4ai": "CRAWL4AI_URL (the Crawl4AI runner)",
    "qdrant": "VECTOR_STORE=qdrant",
}


def _component_rows(components: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each component's state, breaker state and the rest of what it reports; optional ones not configured too."""
    rows = []
    for name, report in components.items():
        breaker = report.get("breaker")
        details = [(k, v) for k, v in report.items() if k not in ("status", "breaker") and v not in (None, "")]
        rows.append(
            (
                name,
                {
                    "status": report.get("status", "unknown"),
                    "breaker": breaker.get("state") if isinstance(breaker, dict) else breaker,
                    "details": details,
                },
            )
        )
    for name, setting in OPTIONAL_COMPONENTS.items():
        if name not in components:
            rows.append((name, {"status": "off", "breaker": None, "details": [("not configured; set", setting)]}))
    return rows


class DashboardPages:
    """GET endpoints of /ui; every page reads the shared runtime the MCP tools use."""

    def __init__(self, holder: RuntimeHolder, settings: Settings) -> None:
        self.holder = holder
        self.settings = settings

    def runtime(self) -> Runtime:
        """The open runtime; NotReadyError while there is none."""
        if self.holder.runtime is None:
            raise NotReadyError("the server is starting; reload in a moment")
        return self.holder.runtime

    def page(
        self, request: Request, template: str, title: str, active: str, *, status: int = 200, **context: Any
    ) -> Response:
        """Render a page with the chrome every page shares."""
        token = self.settings.mcp_auth_token
        signed_in = token is not None and ui_session_valid(token.get_secret_value(), request.cookies.get(UI_COOKIE))
        context.setdefault("error", None)
        context.setdefault("notice", None)
        return render(request, template, status=status, title=title, active=active, signed_in=signed_in, **context)

    async def collections(self) -> list[str]:
        """Names of the collections that hold pages."""
        return sorted({row["collection"] for row in await self.runtime().store.catalog.list_sources()})

    async def sources_rows(self) -> list[SourceOut]:
        """list_sources' answer."""
        runtime = self.runtime()
        rows = await runtime.store.catalog.list_sources()
        return sources_result(rows, await runtime.scheduler.store.all()).sources

    async def sources(self, request: Request, *, error: str | None = None, status: int = 200) -> Response:
        """Every source with counts, versions, last crawl and freshness, and its refresh and delete actions."""
        sources = await self.sources_rows()
        totals = {
            "pages": sum(s.pages for s in sources),
            "chunks": sum(s.chunks for s in sources),
            "collections": len({s.collection for s in sources}),
        }
        return self.page(
            request, "sources.html", "Sources", "sources", status=status, sources=sources, totals=totals,
            notice=_notice(request), error=error,
        )  # fmt: skip

    async def confirm(self, request: Request) -> Response:
        """Ask before a source is refreshed or deleted."""
        q = request.query_params
        action = q.get("action", "")
        match = [
            s
            for s in await self.sources_rows()
            if s.collection == q.get("collection") and s.domain == q.get("domain") and s.site == q.get("site")
        ]
        if action not in ("refresh", "delete") or not match:
            return await self.sources(request, error="That source is not indexed (any more).", status=404)
        source = match[0]
        title = "Delete a source" if action == "delete" else "Refresh a source"
        return self.page(
            request, "confirm.html", title, "sources", action=action, collection=source.collection,
            domain=source.domain, site=source.site, pages=source.pages,
        )  # fmt: skip

    async def index_form(
        self, request: Request, *, form: dict[str, Any] | None = None, result: Any = None, error: str | None = None,
        status: int = 200,
    ) -> Response:  # fmt: skip
        """The indexing form, the last single-page result, and the newest crawl jobs."""
        jobs = await self.runtime().jobs.recent(20)
        return self.page(
            request, "index.html", "Index", "index", status=status, form={**INDEX_DEFAULTS, **(form or {})},
            result=result, jobs=jobs, collections=await self.collections(), error=error,
            limits={"depth": self.settings.crawl_max_depth, "pages": self.settings.crawl_max_pages},
        )  # fmt: skip

    async def job(self, request: Request) -> Response:
        """A crawl job's live progress (app.js polls /ui/api/jobs/{id}) and its cancel button."""
        status = await self.runtime().crawler.status(request.path_params["job_id"])
        return self.page(request, "job.html", "Crawl job", "index", job=job_result(status))

    async def search(self, request: Request) -> Response:
        """The playground: results with deep links, every leg's rank and score, fused and rerank scores, timings."""
        q = request.query_params
        form = {
            "q": q.get("q", ""),
            "mode": q.get("mode", "hybrid"),
            "collection": q.get("collection", ""),
            "k": q.get("k", str(self.settings.rerank_final_k)),
            "version": q.get("version", ""),
            "rerank": q.get("rerank", "on"),
        }
        can_rerank = self.runtime().reranker is not None
        outcome, error = None, None
        if form["q"].strip():
            try:
                k = parse_int(form["k"], "Results")
                request_ = SearchRequest.create(
                    self.settings, form["q"], k, form["collection"] or None, None, form["mode"], None,
                    form["rerank"] != "off" if can_rerank else None, None, form["version"] or None,
                )  # fmt: skip
                outcome = search_result(await self.runtime().pipeline.search(request_))
            except WebIngestError as exc:
                error = error_text(exc)
        return self.page(
            request, "search.html", "Search", "search", status=400 if error else 200, form=form, outcome=outcome,
            error=error, max_k=MAX_K, can_rerank=can_rerank,
            collection_options=[("", "All"), *((c, c) for c in await self.collections())],
        )  # fmt: skip

    async def health(self, request: Request) -> Response:
        """Each component's state and circuit breaker, counts, and the key metrics."""
        runtime = self.runtime()
        report = await runtime.health()
        return self.page(
            request, "health.html", "Health", "health", report=report,
            components=_component_rows(report["components"]), metrics=key_metrics(runtime.metrics),
        )  # fmt: skip

    async def login(self, request: Request, *, error: str | None = None, status: int = 200) -> Response:
        """The token form (only when a token is set)."""
        next_page = request.query_params.get("next", "/ui/sources")
        return self.page(request, "login.html", "Sign in", "", status=status, next=next_page, error=error)


def parse_int(value: str, label: str) -> int:
    """A form field as an int; InvalidInputError naming the field otherwise."""
    try:
        return int(value)
    except ValueError:
        raise InvalidInputError(f"{label} must be a whole number (got {value!r})") from None


def _notice(request: Request) -> str | None:
    """The message of a finished action, from its redirect's query (numbers and names only, shown as text)."""
    q = request.query_params
    if q.get("deleted", "").isdigit():
        return f"Deleted {q['deleted']} pages of {q.get('domain', '')} from {q.get('collection', '')}."
    return None
