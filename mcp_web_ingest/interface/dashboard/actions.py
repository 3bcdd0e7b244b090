"""The dashboard's actions (POST) and its JSON: index, cancel, refresh, delete, sign in and out, job progress."""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import InvalidInputError, WebIngestError
from mcp_web_ingest.interface.auth import UI_COOKIE, UI_PREFIX, ui_session_value
from mcp_web_ingest.interface.dashboard.pages import DashboardPages, error_text, parse_int
from mcp_web_ingest.interface.dashboard.render import SECURITY_HEADERS
from mcp_web_ingest.interface.indexing import IndexOrder, index_one, start_crawl
from mcp_web_ingest.interface.schemas import job_result
from mcp_web_ingest.interface.tool_errors import check_text_arguments

__all__ = ["DashboardActions", "is_same_origin"]

SCOPES = ("path", "host", "domain")


def is_same_origin(request: Request) -> bool:
    """True when a browser says the request comes from this server's own pages.

    Browsers send Origin with every POST; the Host/Origin guard in front has already refused foreign ones, so a POST
    without an Origin (or a same-origin Sec-Fetch-Site) did not come from a page of ours.
    """
    return "origin" in request.headers or request.headers.get("sec-fetch-site") == "same-origin"


def _see(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _safe_next(target: str) -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    ok = target.startswith(UI_PREFIX) and not target.startswith("//") and "\\" not in target
    return target if ok else f"{UI_PREFIX}/sources"


class DashboardActions:
    """POST endpoints of /ui and the job progress the job page polls."""

    def __init__(self, pages: DashboardPages, settings: Settings) -> None:
        self.pages = pages
        self.settings = settings

    async def index(self, request: Request) -> Response:
        """Index the form's page now, or start its crawl and show the job."""
        form = {k: str(v) for k, v in (await request.form()).items()}
        shown: dict[str, Any] = {**form, "force": form.get("force") == "1"}
        try:
            check_text_arguments(form)
            scope = form.get("scope", "path")
            if scope not in SCOPES:
                raise InvalidInputError(f"Scope must be one of {', '.join(SCOPES)} (got {scope!r})")
            order = IndexOrder(
                url=form.get("url", "").strip(),
                max_depth=parse_int(form.get("max_depth") or "0", "Depth"),
                max_pages=parse_int(form.get("max_pages") or "1", "Pages"),
                include=_lines(form.get("include", "")),
                exclude=_lines(form.get("exclude", "")),
                scope=scope,  # type: ignore[arg-type]
                force=shown["force"],
                collection=form.get("collection", "").strip() or None,
            )
            runtime = self.pages.runtime()
            if order.single:
                result = await index_one(runtime, order)
                return await self.pages.index_form(request, form=shown, result=result)
            started = await start_crawl(runtime, order)
        except WebIngestError as exc:
            return await self.pages.index_form(request, form=shown, error=error_text(exc), status=400)
        return _see(f"{UI_PREFIX}/jobs/{started.job_id}")

    async def cancel(self, request: Request) -> Response:
        """Cancel a crawl job; pages it indexed stay."""
        job_id = request.path_params["job_id"]
        await self.pages.runtime().crawler.cancel(job_id)
        return _see(f"{UI_PREFIX}/jobs/{job_id}")

    async def refresh(self, request: Request) -> Response:
        """Re-crawl one source's pages (its site's URL prefix) as a refresh job."""
        form = await request.form()
        collection, site = str(form.get("collection", "")), str(form.get("site", ""))
        try:
            check_text_arguments({"collection": collection, "site": site})
            job_id = await self.pages.runtime().crawler.refresh(collection, site.rstrip("/") + "/")
        except WebIngestError as exc:
            return await self.pages.sources(request, error=error_text(exc), status=400)
        return _see(f"{UI_PREFIX}/jobs/{job_id}")

    async def delete(self, request: Request) -> Response:
        """Delete one source's pages with their chunks and vectors."""
        form = await request.form()
        collection, domain, site = (str(form.get(k, "")) for k in ("collection", "domain", "site"))
        try:
            check_text_arguments({"collection": collection, "domain": domain, "site": site})
            deleted = await self.pages.runtime().store.delete_source(collection, domain, site.rstrip("/") + "/")
        except WebIngestError as exc:
            return await self.pages.sources(request, error=error_text(exc), status=400)
        query = urlencode({"deleted": deleted, "domain": domain, "collection": collection})
        return _see(f"{UI_PREFIX}/sources?{query}")

    async def job_json(self, request: Request) -> Response:
        """A crawl job's status as crawl_status returns it."""
        try:
            status = await self.pages.runtime().crawler.status(request.path_params["job_id"])
        except WebIngestError as exc:
            return JSONResponse({"error": error_text(exc)}, status_code=404, headers=SECURITY_HEADERS)
        return JSONResponse(job_result(status).model_dump(mode="json"), headers=SECURITY_HEADERS)

    async def login(self, request: Request) -> Response:
        """Check the token and keep a session cookie for this browser session."""
        token = self.settings.mcp_auth_token
        form = await request.form()
        target = _safe_next(str(form.get("next", "")))
        if token is None:
            return _see(target)
        expected = token.get_secret_value()
        if not hmac.compare_digest(str(form.get("token", "")).encode(), expected.encode()):
            return await self.pages.login(request, error="That token is not this server's MCP_AUTH_TOKEN.", status=401)
        response = _see(target)
        response.set_cookie(
            UI_COOKIE, ui_session_value(expected), path=UI_PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    async def logout(self, request: Request) -> Response:
        """Forget this browser's session."""
        response = _see(f"{UI_PREFIX}/login" if self.settings.mcp_auth_token else f"{UI_PREFIX}/sources")
        response.delete_cookie(UI_COOKIE, path=UI_PREFIX, httponly=True, samesite="strict")
        return response
