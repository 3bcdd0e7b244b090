"""Fetching through the Crawl4AI runner (CRAWL4AI_URL) for JavaScript-rendered pages, with a fallback fetcher."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.service import CircuitBreaker
from mcp_web_ingest.errors import (
    BlockedAddressError,
    FetchError,
    InvalidInputError,
    ServiceUnavailable,
    UnsupportedContentError,
)
from mcp_web_ingest.ingest.auth_profiles import RequestAuth
from mcp_web_ingest.ingest.content import (
    HTML_TYPES,
    parse_content_type,
    status_hint,
    status_phrase,
    too_large_message,
)
from mcp_web_ingest.ingest.fetch import TRANSIENT_STATUSES, Fetcher, is_http_url
from mcp_web_ingest.ingest.formats.detect import document_format, is_indexable_type, unsupported_message
from mcp_web_ingest.ingest.ssrf import AddressPolicy
from mcp_web_ingest.models import FetchedPage
from mcp_web_ingest.retry import TransientError

log = logging.getLogger(__name__)

OutcomeCallback = Callable[[str], None]
# The runner bounds a crawl by the timeout_s we send; the margin lets its own 504 arrive before our timeout fires.
_RUNNER_MARGIN_S = 10.0
# Errors the runner reports about the target, not itself: the runner is healthy, the built-in fetcher retries.
_TARGET_ERRORS = frozenset({"target_unreachable", "target_timeout", "target_too_large"})
_SERVICE = "crawl4ai"
# The runner gave no usable page, so the fallback fetches it: ServiceUnavailable when the runner itself failed (its
# breaker counts it), TransientError when it answered properly about the target (the fallback retries the target).
_NO_PAGE = (ServiceUnavailable, TransientError)


class _CookiesUnsupported(Exception):
    """The runner crawls over plain HTTP, which cannot keep cookies to one host: the built-in fetcher takes them."""


class _NotHtml(Exception):
    """The runner reached a document that is not HTML (Markdown, PDF...): the built-in fetcher reads those."""


class Crawl4AIFetcher:
    """A Fetcher that asks the Crawl4AI runner for each page and falls back to another Fetcher when it cannot.

    The runner is skipped (straight to the fallback) while its circuit breaker is open. A page the target itself
    refuses (404, non-HTML, too large) raises the same FetchError HttpFetcher raises; transient target statuses
    (429, 5xx) and runner-side failures go to the fallback, which applies the retry policy. Conditional GET is not
    supported through the runner: validators go to the fallback only, and a runner fetch is always a full GET (the
    pipeline's content hash still recognises an unchanged page). ``aclose`` also closes the fallback.

    SSRF: the target URL is checked against the address policy before it goes to the runner, and the policy itself
    (ALLOW_PRIVATE_NETWORKS, ALLOWED_HOSTS) goes with every request: the runner sends every connection of the crawl
    (each redirect hop; in browser mode also subresources, fetch/XHR and WebSockets) through an egress proxy that
    resolves each host, vets every address with the same rules and dials only a vetted one. A refused page comes back
    as ``target_blocked`` and raises BlockedAddressError here; the final URL is checked again all the same.
    """

    def __init__(self, settings: Settings, fallback: Fetcher, on_outcome: OutcomeCallback | None = None) -> None:
        if not settings.crawl4ai_url:
            raise ValueError("Crawl4AIFetcher needs CRAWL4AI_URL")
        self._settings = settings
        self.base_url = settings.crawl4ai_url.rstrip("/")
        self._fallback = fallback
        self._on_outcome = on_outcome
        # A few failures in a row open it: a dead or hung runner then costs nothing until the cool-down ends.
        self.breaker = CircuitBreaker(
            "crawl4ai",
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout_s=settings.breaker_reset_timeout_s,
        )
        self.counters = {"success": 0, "fallback": 0, "failed": 0}
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.last_strategy: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._policy = AddressPolicy.from_settings(settings)
        hosts = settings.allowed_hosts  # a str only via model_copy(update=...), which skips the splitting validator
        hosts = hosts.split(",") if isinstance(hosts, str) else hosts
        self._egress = {"allow_private_networks": settings.allow_private_networks, "allowed_hosts": list(hosts)}
        # The runner bounds its own crawl by this; with CRAWL4AI_TIMEOUT_S shorter than the fetch timeout, by that.
        self._runner_timeout_s = min(settings.fetch_timeout_s, settings.crawl4ai_timeout_s or settings.fetch_timeout_s)

    def _session_now(self) -> aiohttp.ClientSession:
        # Created lazily so the fetcher can be built outside a running event loop.
        if self._session is None or self._session.closed:
            s = self._settings
            total = s.crawl4ai_timeout_s or s.fetch_timeout_s + _RUNNER_MARGIN_S
            timeout = aiohttp.ClientTimeout(total=total, sock_connect=s.fetch_connect_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": s.user_agent})
        return self._session

    def _outcome(self, outcome: str) -> None:
        self.counters[outcome] += 1
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        auth: RequestAuth | None = None,
    ) -> FetchedPage:
        """Fetch through the runner; on runner failure fetch with the fallback (outcome success/fallback/failed)."""
        if not is_http_url(url):
            raise InvalidInputError(f"Cannot fetch {url!r}: only absolute http:// and https:// URLs can be fetched")
        validators = {k: v for k, v in (("etag", etag), ("last_modified", last_modified)) if v}
        cookies = auth.runner_cookies(url) if auth is not None else None
        if auth is not None and cookies is None:
            # Headers and HTTP Basic would follow the browser's redirects to any host: the built-in fetcher takes them.
            return await self._fallback.fetch(url, **validators, auth=auth)
        # The runner resolves and connects on its own, so the target is vetted here, before it is sent there.
        await self._policy.check(url)
        try:
            try:
                page = await self._via_runner(url, cookies)
            except (_NotHtml, _CookiesUnsupported):
                # Rendering is for HTML (other documents are read as they are), and only a browser keeps cookies
                # to one host: the built-in fetcher takes those.
                page = await self._fallback.fetch(url, **validators, auth=auth)
            if page.final_url != url:
                # The runner followed redirects itself; a page that ended in private space is refused, not stored.
                await self._policy.check(page.final_url)
        except _NO_PAGE as exc:
            self.last_error, self.last_error_at = str(exc), datetime.now(UTC).isoformat(timespec="seconds")
            log.warning("crawl4ai runner gave no page for %s, using the built-in fetcher: %s", url, exc)
            try:
                page = await self._fallback.fetch(url, **validators, auth=auth)
            except FetchError:
                self._outcome("failed")
                raise
            self._outcome("fallback")
            return page
        except FetchError:
            self._outcome("failed")
            raise
        self._outcome("success")
        return page

    async def _via_runner(self, url: str, cookies: list[dict[str, str]] | None = None) -> FetchedPage:
        """POST /crawl and turn the answer into a page; one of _NO_PAGE when the fallback should take over."""
        if not self.breaker.acquire():
            raise ServiceUnavailable(
                f"circuit open after {self.breaker.consecutive_failures} failures, next probe in "
                f"{self.breaker.retry_in_s():.0f} s (last error: {self.breaker.last_error})",
                service=_SERVICE,
                short_circuited=True,
            )
        started = time.monotonic()
        try:
            data = await self._post(url, cookies)
        except ServiceUnavailable as exc:
            self.breaker.record_failure(str(exc))
            raise
        except TransientError:
            self.breaker.record_success()  # it answered properly about an unreachable target
            raise
        except BlockedAddressError:
            self.breaker.record_success()  # it refused a private target, as asked
            raise
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        self.last_strategy = data.get("strategy")
        return self._to_page(url, data, time.monotonic() - started)

    async def _post(self, url: str, cookies: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """The runner's JSON answer, checked for shape; one of _NO_PAGE on any transport or protocol problem."""
        endpoint = self.base_url + "/crawl"
        # JSON may escape every byte of the page as \uXXXX; anything beyond that is not a page we would accept.
        cap = 6 * self._settings.fetch_max_bytes + 64 * 1024
        try:
            body = {"url": url, "timeout_s": self._runner_timeout_s, "egress": self._egress}
            if cookies:
                body["cookies"] = cookies
            async with self._session_now().post(endpoint, json=body) as resp:
                status = resp.status
                raw = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    raw += chunk
                    if len(raw) > cap:
                        raise TransientError(f"answer for {url} exceeds {cap} bytes")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable(f"{endpoint}: {type(exc).__name__}: {exc}", service=_SERVICE) from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ServiceUnavailable(
                f"{endpoint} answered HTTP {status} with a non-JSON body", service=_SERVICE, status=status
            ) from exc
        if status >= 400:
            error = data.get("error") if isinstance(data, dict) else None
            error_type = data.get("error_type") if isinstance(data, dict) else None
            if error_type == "cookies_unsupported":
                raise _CookiesUnsupported(str(error))
            if error_type == "target_blocked":
                # The runner's egress proxy refused a hop (the message names it): the same answer as HttpFetcher's.
                raise BlockedAddressError(str(error or f"Refusing to fetch {url}: blocked address"), url=url)
            message = f"{endpoint} answered HTTP {status} {error_type or ''}: {error or bytes(raw[:200])!r}"
            if error_type in _TARGET_ERRORS:
                raise TransientError(message, status=status)
            raise ServiceUnavailable(message, service=_SERVICE, status=status)
        if not (
            isinstance(data, dict)
            and isinstance(data.get("html"), str)
            and isinstance(data.get("status_code"), int)
            and isinstance(data.get("final_url"), str)
            and isinstance(data.get("content_type"), str | None)
            and isinstance(data.get("headers", {}), dict | None)
        ):
            raise ServiceUnavailable(f"{endpoint} answered with an unexpected JSON shape", service=_SERVICE)
        return data

    def _to_page(self, url: str, data: dict[str, Any], elapsed_s: float) -> FetchedPage:
        """Apply HttpFetcher's status, content-type and size rules to a runner answer."""
        status: int = data["status_code"]
        if status in TRANSIENT_STATUSES:
            # The built-in fetcher owns the retry policy (backoff, Retry-After); let it try the page itself.
            raise TransientError(f"target answered HTTP {status} {status_phrase(status)}", status=status)
        if not 200 <= status < 300 or status == 204:
            message = f"HTTP {status} {status_phrase(status)} for {url}: {status_hint(status)}"
            raise FetchError(message, url=url, status=status)
        media_type, charset = parse_content_type(data["content_type"])
        if media_type is not None and media_type not in HTML_TYPES:
            if is_indexable_type(media_type):
                raise _NotHtml(media_type)
            raise UnsupportedContentError(unsupported_message(url, media_type), url=url, status=status)
        html: str = data["html"]
        body = html.encode("utf-8", errors="surrogatepass")
        limit = self._settings.fetch_max_bytes
        if len(body) > limit:
            raise FetchError(
                too_large_message(url, limit, f"{len(body)} bytes came through Crawl4AI"), url=url, status=status
            )
        if document_format(url, status, media_type, body, "utf-8") != "html":
            raise _NotHtml(media_type or "unlabelled")
        media_type = media_type or "text/html"
        headers = {str(k).lower(): str(v) for k, v in (data.get("headers") or {}).items()}
        return FetchedPage(
            url=url,
            final_url=data["final_url"] or url,
            status=status,
            content_type=media_type,
            text=html,
            # The runner decoded the page; the declared label is the best record of the codec it used.
            encoding=(charset or "utf-8").lower(),
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            elapsed_s=elapsed_s,
        )

    def health(self) -> dict[str, Any]:
        """Runner state from recent fetches, without I/O: ok, or degraded while fetches fall back."""
        breaker = self.breaker.snapshot()
        ok = breaker["state"] == "closed" and breaker["consecutive_failures"] == 0
        return {
            "status": "ok" if ok else "degraded",
            "url": self.base_url,
            "strategy": self.last_strategy,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "counters": dict(self.counters),
            "breaker": breaker,
        }

    async def aclose(self) -> None:
        """Close the runner session and the fallback fetcher."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        await self._fallback.aclose()
