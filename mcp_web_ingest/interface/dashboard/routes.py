"""The dashboard's routes under /ui, behind the same token and Host/Origin guards as /mcp."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import NotReadyError, WebIngestError
from mcp_web_ingest.interface.dashboard.actions import DashboardActions, is_same_origin
from mcp_web_ingest.interface.dashboard.pages import DashboardPages, error_text
from mcp_web_ingest.interface.dashboard.render import SECURITY_HEADERS, STATIC_DIR
from mcp_web_ingest.runtime import RuntimeHolder

__all__ = ["dashboard_routes"]

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def _failures(pages: DashboardPages, endpoint: Endpoint, *, post: bool = False) -> Endpoint:
    """Answer a starting server with 503, a cross-site POST with 403 and an error with a page saying what failed."""

    @functools.wraps(endpoint)
    async def handle(request: Request) -> Response:
        if post and not is_same_origin(request):
            return PlainTextResponse("cross-site form posts are refused", status_code=403, headers=SECURITY_HEADERS)
        try:
            return await endpoint(request)
        except NotReadyError as exc:
            return PlainTextResponse(str(exc), 503, headers=SECURITY_HEADERS)
        except WebIngestError as exc:
            message = error_text(exc)
        except Exception as exc:
            log.exception("dashboard %s failed", request.url.path)
            message = error_text(exc) + "; the server log has the details"
        return pages.page(request, "base.html", "Something went wrong", "", status=400, error=message)

    return handle


def dashboard_routes(holder: RuntimeHolder, settings: Settings) -> list[BaseRoute]:
    """The /ui routes, served by the MCP server's own HTTP app."""
    pages = DashboardPages(holder, settings)
    actions = DashboardActions(pages, settings)

    async def home(_: Request) -> Response:
        return RedirectResponse("/ui/sources", status_code=303)

    def get(path: str, endpoint: Endpoint) -> Route:
        return Route(path, _failures(pages, endpoint), methods=["GET"])

    def post(path: str, endpoint: Endpoint) -> Route:
        return Route(path, _failures(pages, endpoint, post=True), methods=["POST"])

    return [
        Route("/ui", home, methods=["GET"]),
        Route("/ui/", home, methods=["GET"]),
        get("/ui/sources", pages.sources),
        get("/ui/sources/confirm", pages.confirm),
        post("/ui/sources/refresh", actions.refresh),
        post("/ui/sources/delete", actions.delete),
        get("/ui/index", pages.index_form),
        post("/ui/index", actions.index),
        get("/ui/jobs/{job_id}", pages.job),
        post("/ui/jobs/{job_id}/cancel", actions.cancel),
        get("/ui/api/jobs/{job_id}", actions.job_json),
        get("/ui/search", pages.search),
        get("/ui/health", pages.health),
        get("/ui/login", pages.login),
        post("/ui/login", actions.login),
        post("/ui/logout", actions.logout),
        Mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static"),
    ]
