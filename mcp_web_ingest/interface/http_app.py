"""The HTTP side of the server: one ASGI app for streamable HTTP, legacy SSE, /health and /metrics, guarded."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from mcp_web_ingest.config import Settings
from mcp_web_ingest.interface.auth import guard_layers
from mcp_web_ingest.interface.dashboard import dashboard_routes
from mcp_web_ingest.interface.server import create_server, serving_holder
from mcp_web_ingest.interface.sessions import SessionLimitMiddleware

__all__ = ["create_http_app"]


def create_http_app(settings: Settings) -> Starlette:
    """One ASGI app: streamable HTTP at /mcp, legacy SSE at /sse + /messages/, GET /health, GET /metrics and the
    dashboard at /ui."""
    holder = serving_holder(settings)
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

    def observe_sessions(streamable: int, sse: int) -> None:
        if holder.runtime is not None:
            holder.runtime.metrics.observe_sessions(streamable, sse)

    mcp.custom_route("/health", methods=["GET"])(health_route)
    mcp.custom_route("/metrics", methods=["GET"])(metrics_route)
    # One Host/Origin guard of ours covers every path and bind address, so the SDK's (loopback-only) one is off.
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = mcp.streamable_http_app(
        host=settings.mcp_host,
        transport_security=security,
        session_idle_timeout=settings.mcp_session_idle_timeout_s,
        max_sessions=2 * settings.mcp_max_sessions,  # a backstop: SessionLimitMiddleware keeps below the real cap
    )
    sse = mcp.sse_app(host=settings.mcp_host, transport_security=security)
    for route in sse.routes:
        if (isinstance(route, Route) and route.path == "/sse") or (
            isinstance(route, Mount) and route.path == "/messages"
        ):
            app.router.routes.append(route)
    app.router.routes.extend(dashboard_routes(holder, settings))

    session_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Starlette) -> AsyncIterator[Any]:
        # The process holds the runtime for its whole life, so start-up errors surface before serving.
        async with holder.acquire(), session_lifespan(a) as state:
            yield state

    app.router.lifespan_context = lifespan
    # Added innermost first: Host/Origin check, then the token, then the session bookkeeping.
    app.add_middleware(
        SessionLimitMiddleware,
        max_sessions=settings.mcp_max_sessions,
        per_client=settings.mcp_max_sessions_per_client,
        idle_timeout_s=settings.mcp_session_idle_timeout_s,
        observe=observe_sessions,
    )
    for middleware, options in guard_layers(settings, settings.mcp_host):
        app.add_middleware(middleware, **options)
    return app
