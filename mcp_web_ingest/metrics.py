"""Prometheus metrics, kept in a registry owned by the runtime (no module-level globals)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

LOOP_LAG_INTERVAL_S = 0.1
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class SignalNeutralServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the process it runs in (the stdio MCP server)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handlers."""
        yield


class Metrics:
    """Every metric the server exports."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pages_indexed = Counter(
            "web_pages_indexed", "Pages indexed, by outcome (indexed, unchanged, failed)", ["outcome"], registry=r
        )
        self.index_duration = Histogram(
            "web_index_duration_seconds", "Time to index one page", buckets=(0.5, 1, 2, 5, 10), registry=r
        )
        self.mcp_sessions = Gauge(
            "mcp_sessions_open", "Open MCP sessions (streamable HTTP) and SSE streams", ["transport"], registry=r
        )
        self.chunks_generated = Counter("web_chunks_generated", "Chunks written to the store", registry=r)
        self.chunks_reused = Counter("web_chunks_embedding_reused", "Chunks whose vector was reused", registry=r)
        self.query_duration = Histogram(
            "web_query_duration_seconds",
            "Search latency by mode",
            ["mode"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=r,
        )
        self.scheduled_refreshes = Counter(
            "web_scheduled_refreshes", "Scheduled refreshes by outcome (started, not_started)", ["outcome"], registry=r
        )
        self.refresh_schedules = Gauge(
            "web_refresh_schedules", "Refresh schedules by the state of their last job (none: never run)", ["state"],
            registry=r,
        )  # fmt: skip
        self.refresh_next_run = Gauge(
            "web_refresh_next_run_timestamp_seconds", "When the earliest scheduled refresh is due", registry=r
        )
        self.refresh_last_run = Gauge(
            "web_refresh_last_run_timestamp_seconds", "When the latest scheduled refresh started", registry=r
        )
        self.queries = Counter("web_queries", "Searches by mode and outcome", ["mode", "outcome"], registry=r)
        self.embedding_batch_duration = Histogram(
            "web_embedding_batch_duration_seconds",
            "Time to embed one batch",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.fetches = Counter(
            "web_fetch", "HTTP fetches by status class (2xx, 3xx, 4xx, 5xx, error)", ["status_class"], registry=r
        )
        self.splade_requests = Counter(
            "splade_requests", "SPLADE requests by outcome (success, failed, short_circuited)", ["outcome"], registry=r
        )
        self.rerank_requests = Counter(
            "rerank_requests", "Rerank requests by outcome (success, failed, short_circuited)", ["outcome"], registry=r
        )
        self.crawl4ai_fetches = Counter(
            "web_crawl4ai_fetches",
            "Fetches through Crawl4AI by outcome (success, fallback, failed)",
            ["outcome"],
            registry=r,
        )
        self.crawl_jobs_running = Gauge("web_crawl_jobs_running", "Crawl jobs this process is running", registry=r)
        self.pages_stored = Gauge("web_pages_stored", "Pages in the store (updated on health checks)", registry=r)
        self.chunks_stored = Gauge("web_chunks_stored", "Chunks in the store (updated on health checks)", registry=r)
        self.event_loop_lag = Histogram(
            "event_loop_lag_seconds",
            "How late the event loop resumed a task sleeping a fixed interval (time the loop was blocked or busy)",
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )

    def observe_fetch(self, status: int | None) -> None:
        """Count a fetch by its status class ('error' when there was no HTTP status)."""
        self.fetches.labels("error" if status is None else f"{status // 100}xx").inc()

    @contextlib.asynccontextmanager
    async def watch_loop_lag(self, interval_s: float = LOOP_LAG_INTERVAL_S) -> AsyncIterator[None]:
        """Measure the running event loop's lag for the duration of the block.

        A task sleeps `interval_s` again and again and records in `event_loop_lag_seconds` how much later than asked
        it woke up: near zero while the loop is free, the length of any blocking call (model, parsing) otherwise.
        """

        async def watch() -> None:
            loop = asyncio.get_running_loop()
            while True:
                started = loop.time()
                await asyncio.sleep(interval_s)
                self.event_loop_lag.observe(max(0.0, loop.time() - started - interval_s))

        task = asyncio.create_task(watch(), name="event-loop-lag")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])

    def observe_sessions(self, streamable: int, sse: int) -> None:
        """Record how many MCP sessions and SSE streams are open."""
        self.mcp_sessions.labels("streamable-http").set(streamable)
        self.mcp_sessions.labels("sse").set(sse)

    @contextlib.asynccontextmanager
    async def serve(
        self, host: str, port: int, wrap: Callable[[ASGIApp], ASGIApp] = lambda app: app
    ) -> AsyncIterator[None]:
        """Serve GET /metrics on its own port (stdio mode has no HTTP app); ``wrap`` adds the HTTP guards."""

        async def metrics(_: Request) -> Response:
            return Response(self.render(), media_type=self.content_type)

        app = wrap(Starlette(routes=[Route("/metrics", metrics, methods=["GET"])]))
        server = SignalNeutralServer(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve(), name="metrics-http")
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn offers a flag, no event
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # the port could not be bound: raise that
            raise OSError(f"metrics server on {host}:{port} stopped at start-up")
        try:
            yield
        finally:
            server.should_exit = True
            await task

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
