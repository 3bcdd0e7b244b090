"""Crawl4AI runner: fetches (and optionally renders) one page per POST /crawl and returns its HTML.

Run: python -m tools.crawl4ai_runner [--host 127.0.0.1] [--port 8000]   (or python tools/crawl4ai_runner/app.py ...)
Environment: USE_SIMPLE_CRAWLER, CHROMIUM_PATH, MAX_CONCURRENCY, MAX_BYTES, DEFAULT_TIMEOUT_S,
CRAWL4_AI_BASE_DIRECTORY, ALLOW_PRIVATE_NETWORKS, ALLOWED_HOSTS (see RunnerConfig and README.md).
Every connection a crawl opens goes through a guarded egress proxy (egress.py) that applies the SSRF policy.
Fault injection for reliability tests (off by default): --enable-fault-control, --fault-delay-s, --fault-drip-s
(see faults.py and README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mcp_web_ingest.ingest.ssrf import AddressPolicy
from tools import faults as fault_injection
from tools.crawl4ai_runner.chromium import Chromium
from tools.crawl4ai_runner.egress import BLOCKED_HEADER, UNREACHABLE_HEADER, EgressProxy

log = logging.getLogger("crawl4ai_runner")
_COOKIE_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_COOKIE_BAD = re.compile(r"[;\r\n\x00]")


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None or not value.strip() else value.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class RunnerConfig:
    """Settings of the runner, read from the environment."""

    simple: bool = field(default_factory=lambda: _env_bool("USE_SIMPLE_CRAWLER", False))
    chromium_path: str = field(default_factory=lambda: os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
    max_concurrency: int = field(default_factory=lambda: int(os.environ.get("MAX_CONCURRENCY", "4")))
    max_bytes: int = field(default_factory=lambda: int(os.environ.get("MAX_BYTES", str(10 * 1024 * 1024))))
    default_timeout_s: float = field(default_factory=lambda: float(os.environ.get("DEFAULT_TIMEOUT_S", "30")))
    user_agent: str | None = field(default_factory=lambda: os.environ.get("USER_AGENT") or None)
    # The SSRF policy of a request that sends none ("egress"); the server's client always sends its own.
    allow_private_networks: bool = field(default_factory=lambda: _env_bool("ALLOW_PRIVATE_NETWORKS", False))
    allowed_hosts: list[str] = field(
        default_factory=lambda: [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    )

    @property
    def strategy(self) -> str:
        """'http' (AsyncHTTPCrawlerStrategy) or 'browser' (Playwright over CDP to the system Chromium)."""
        return "http" if self.simple else "browser"


class HttpError(Exception):
    """An error answered as {"error": message, "error_type": kind} with an HTTP status."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def prepare_environment() -> Path:
    """Point crawl4ai at a writable base directory and silence its cloud notice; must run before importing it."""
    base = os.environ.get("CRAWL4_AI_BASE_DIRECTORY")
    if not base:
        # crawl4ai otherwise writes ~/.crawl4ai, which may be read-only or shared with other users.
        base = os.path.join(tempfile.gettempdir(), f"crawl4ai-runner-{os.getuid()}")
        os.environ["CRAWL4_AI_BASE_DIRECTORY"] = base
    os.environ.setdefault("CRAWL4AI_NO_CLOUD_NOTICE", "1")
    Path(base).mkdir(parents=True, exist_ok=True)
    return Path(base)


class Crawler:
    """One crawl4ai strategy shared by every request, behind a semaphore of MAX_CONCURRENCY."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.chromium: Chromium | None = None
        self.strategy: Any = None
        self.version: str | None = None
        self._slots = asyncio.Semaphore(max(1, config.max_concurrency))
        # Final-response headers per request, captured by the after_goto hook (the strategy reports the first hop's).
        self._final_headers: dict[int, dict[str, str]] = {}
        # Session cookies of a request (browser mode), set on its context before navigation and cleared after.
        self._cookies: dict[int, list[dict[str, str]]] = {}
        self._cookie_contexts: dict[int, Any] = {}

    async def start(self) -> None:
        """Create and start the strategy (and Chromium, in browser mode)."""
        base = prepare_environment()
        import crawl4ai
        from crawl4ai.async_crawler_strategy import AsyncHTTPCrawlerStrategy, AsyncPlaywrightCrawlerStrategy
        from crawl4ai.async_logger import AsyncLogger

        self.version = crawl4ai.__version__.__version__
        logger = AsyncLogger(verbose=False)
        ua = self.config.user_agent
        if self.config.simple:
            # Non-HTML answers are saved as "downloads"; keep them under the base directory, not ~/.crawl4ai.
            downloads = str(base / "downloads")
            http = crawl4ai.HTTPCrawlerConfig(headers={"User-Agent": ua} if ua else None, downloads_path=downloads)
            self.strategy = AsyncHTTPCrawlerStrategy(browser_config=http, logger=logger)
        else:
            self.chromium = Chromium(self.config.chromium_path)
            cdp_url = await self.chromium.start()
            extra = {"user_agent": ua} if ua else {}
            browser = crawl4ai.BrowserConfig(
                cdp_url=cdp_url, headless=True, verbose=False, create_isolated_context=True, **extra
            )
            self.strategy = AsyncPlaywrightCrawlerStrategy(browser_config=browser, logger=logger)
            self.strategy.set_hook("after_goto", self._after_goto)
            self.strategy.set_hook("on_page_context_created", self._add_cookies)
        await self.strategy.start()

    async def _after_goto(self, page: Any, *, response: Any = None, config: Any = None, **_: Any) -> Any:
        if response is not None and config is not None:
            self._final_headers[id(config)] = dict(await response.all_headers())
        return page

    async def _add_cookies(self, page: Any, *, context: Any = None, config: Any = None, **_: Any) -> Any:
        """Give a request's context its cookies: host-only, so the browser sends them to the page's host alone.

        crawl4ai may reuse a context for a later request, so they are cleared when the request ends.
        """
        cookies = self._cookies.get(id(config)) if config is not None else None
        if cookies and context is not None:
            await context.add_cookies(cookies)
            self._cookie_contexts[id(config)] = context
        return page

    async def close(self) -> None:
        """Stop the strategy, then the browser."""
        try:
            if self.strategy is not None:
                await self.strategy.close()
        finally:
            if self.chromium is not None:
                self.chromium.stop()

    def health(self) -> dict[str, Any]:
        """State for GET /health."""
        browser = None
        if self.chromium is not None:
            browser = {"path": self.chromium.path, "version": self.chromium.version, "alive": self.chromium.alive()}
        return {
            "status": "ok" if browser is None or browser["alive"] else "error",
            "strategy": self.config.strategy,
            "browser": browser,
            "crawl4ai_version": self.version,
            "max_concurrency": self.config.max_concurrency,
        }

    async def crawl(
        self,
        url: str,
        timeout_s: float,
        wait_for: str | None,
        policy: AddressPolicy | None = None,
        cookies: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """Fetch (and render, in browser mode) one page; raises HttpError for anything but a target response.

        Every connection goes through an EgressProxy of this request that applies ``policy`` (else the runner's).
        ``cookies`` (browser mode only) go to the page's host through the browser's own cookie rules.
        """
        if cookies and self.config.simple:
            # aiohttp would send a Cookie header along every redirect, to any host: only a browser scopes them.
            raise HttpError(422, "cookies_unsupported", "cookies need the browser strategy (USE_SIMPLE_CRAWLER=false)")
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout_s)
        except TimeoutError as exc:
            raise HttpError(503, "overloaded", f"all {self.config.max_concurrency} crawl slots stayed busy") from exc
        if policy is None:
            c = self.config
            policy = AddressPolicy(allow_private_networks=c.allow_private_networks, allowed_hosts=c.allowed_hosts)
        try:
            async with EgressProxy(policy) as egress:
                return await self._crawl(url, timeout_s, wait_for, egress, started, cookies)
        finally:
            self._slots.release()

    async def _crawl(
        self,
        url: str,
        timeout_s: float,
        wait_for: str | None,
        egress: EgressProxy,
        started: float,
        cookies: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        from crawl4ai import CacheMode, CrawlerRunConfig, ProxyConfig
        from crawl4ai.async_crawler_strategy import HTTPStatusError

        # timeout_s bounds the whole request, so the client can size its own timeout from it.
        left_s = max(1.0, timeout_s - (time.monotonic() - started))
        # crawl4ai keys browser contexts by their settings, proxy included: in practice a fresh context per request.
        run = CrawlerRunConfig(
            cache_mode=CacheMode.BYPASS,
            page_timeout=int(left_s * 1000),
            wait_for=wait_for,
            verbose=False,
            proxy_config=ProxyConfig(server=egress.url),
        )
        if cookies:
            self._cookies[id(run)] = cookies
        try:
            # The strategy's own crawl() returns the HTML without AsyncWebCrawler's markdown and cleaning passes,
            # which cost ~85 % of its CPU time and which our client does not use.
            resp = await asyncio.wait_for(self.strategy.crawl(url, config=run), left_s + 2)
        except TimeoutError as exc:
            raise HttpError(504, "target_timeout", f"{url} did not load within {timeout_s:g} s") from exc
        except Exception as exc:
            self._egress_failure(url, egress, str(exc))
            if (status_error := _find_cause(exc, HTTPStatusError)) is not None:
                # The HTTP strategy raises for non-2xx (wrapped, body dropped); the status is what the client needs.
                return self._result(url, url, status_error.status_code, "", {}, started)
            # Playwright puts the reason (net::ERR_...) on the lines after a generic first line; keep one line.
            message = " ".join(str(exc).split())[:500] or type(exc).__name__
            if "timeout" in type(exc).__name__.lower() or "Timeout" in message:
                raise HttpError(504, "target_timeout", f"{url}: {message}") from exc
            if self.chromium is not None and not self.chromium.alive():
                raise HttpError(500, "crawler_error", f"Chromium died: {message}") from exc
            raise HttpError(502, "target_unreachable", f"Could not crawl {url}: {message}") from exc
        finally:
            headers = self._final_headers.pop(id(run), None)
            self._cookies.pop(id(run), None)
            if (context := self._cookie_contexts.pop(id(run), None)) is not None:
                with contextlib.suppress(Exception):  # a context crawl4ai already closed holds nothing
                    await context.clear_cookies()
        for path in resp.downloaded_files or ():
            # Only the status and type of a non-HTML answer matter to the client; do not keep the file.
            with contextlib.suppress(OSError):
                os.unlink(path)
        status = resp.redirected_status_code or resp.status_code
        final_headers = headers if headers is not None else dict(resp.response_headers or {})
        markers = {k.lower(): v for k, v in final_headers.items()}
        if (refusal := markers.get(BLOCKED_HEADER.lower())) is not None:
            # Chromium shows the proxy's refusal of a plain-http navigation hop as the page: not the target's answer.
            raise HttpError(403, "target_blocked", refusal)
        if (reason := markers.get(UNREACHABLE_HEADER.lower())) is not None:
            raise HttpError(502, "target_unreachable", f"Could not crawl {url}: {reason}")
        return self._result(url, resp.redirected_url or url, status, resp.html or "", final_headers, started)

    def _egress_failure(self, url: str, egress: EgressProxy, message: str) -> None:
        """HttpError when a failed crawl failed because the egress proxy refused or could not reach the page."""
        # In HTTP mode every proxied request is the page or one of its redirect hops. In browser mode refused
        # subresources leave the page loading; only a refused https/ws tunnel fails the navigation itself.
        page_tunnel = self.config.simple or "ERR_TUNNEL_CONNECTION_FAILED" in message
        if egress.blocked and page_tunnel:
            raise HttpError(403, "target_blocked", egress.blocked[0])
        if egress.unreachable and page_tunnel:
            raise HttpError(502, "target_unreachable", f"Could not crawl {url}: {egress.unreachable[0]}")

    def _result(
        self, url: str, final_url: str, status: int, html: str, headers: dict[str, str], started: float
    ) -> dict[str, Any]:
        lowered = {k.lower(): v for k, v in headers.items()}
        size = len(html.encode("utf-8", errors="surrogatepass"))
        if size > self.config.max_bytes:
            raise HttpError(
                502, "target_too_large", f"{url} is {size} bytes, more than MAX_BYTES={self.config.max_bytes}"
            )
        # Without a header: Chromium's serialised DOM is HTML; an HTTP-mode body is left for the client to sniff.
        content_type = lowered.get("content-type") or (None if self.config.simple else "text/html")
        return {
            "url": url,
            "final_url": final_url,
            "status_code": status,
            "html": html,
            "content_type": content_type,
            "headers": lowered,
            "strategy": self.config.strategy,
            "elapsed_s": round(time.monotonic() - started, 3),
        }


def _find_cause(exc: BaseException, kind: type[BaseException]) -> Any:
    """The first exception of type kind in exc's cause/context chain, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


CRAWLER: web.AppKey[Crawler] = web.AppKey("crawler", Crawler)
CONFIG: web.AppKey[RunnerConfig] = web.AppKey("config", RunnerConfig)


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"error": message, "error_type": error_type}, status=status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every refusal, unknown routes and crashes included, answers JSON."""
    try:
        return await handler(request)
    except HttpError as exc:
        return _error(exc.status, exc.error_type, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = "not_found" if exc.status in (404, 405) else "bad_request" if exc.status < 500 else "crawler_error"
        return _error(exc.status, kind, exc.reason)
    except Exception as exc:  # a crawl4ai bug must not surface as aiohttp's HTML 500 page
        log.exception("request failed")
        return _error(500, "crawler_error", f"{type(exc).__name__}: {exc}")


def parse_request(body: Any, default_timeout_s: float) -> tuple[str, float, str | None]:
    """Validate a /crawl body into (url, timeout_s, wait_for); raises HttpError 400."""
    if not isinstance(body, dict):
        raise HttpError(400, "bad_request", "expected a JSON object")
    url = body.get("url")
    if not isinstance(url, str) or not url.strip():
        raise HttpError(400, "bad_request", "field `url` (string) is required")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise HttpError(400, "bad_request", f"only absolute http(s) URLs can be crawled, not {url!r}")
    timeout = body.get("timeout_s", default_timeout_s)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
        raise HttpError(400, "bad_request", "field `timeout_s` must be a number in (0, 300]")
    wait_for = body.get("wait_for")
    if wait_for is not None and not isinstance(wait_for, str):
        raise HttpError(400, "bad_request", "field `wait_for` must be a string (a CSS selector)")
    if wait_for and wait_for.strip().startswith(("js:", "()", "function")):
        # Arbitrary JavaScript from the network would run in our browser; only CSS selectors are accepted.
        raise HttpError(400, "bad_request", "`wait_for` accepts CSS selectors only (optionally prefixed css:)")
    if wait_for and not wait_for.startswith("css:"):
        wait_for = "css:" + wait_for.strip()
    return url.strip(), float(timeout), wait_for or None


def parse_egress(body: dict[str, Any]) -> AddressPolicy | None:
    """The SSRF policy of a /crawl body (``egress``: allow_private_networks, allowed_hosts), None when absent."""
    egress = body.get("egress")
    if egress is None:
        return None
    allow = egress.get("allow_private_networks", False) if isinstance(egress, dict) else None
    hosts = egress.get("allowed_hosts", []) if isinstance(egress, dict) else None
    if not isinstance(allow, bool) or not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise HttpError(
            400, "bad_request", "field `egress` must be {allow_private_networks: bool, allowed_hosts: [str]}"
        )
    return AddressPolicy(allow_private_networks=allow, allowed_hosts=hosts)


def parse_cookies(body: dict[str, Any], url: str) -> list[dict[str, str]] | None:
    """The ``cookies`` of a /crawl body ([{name, value}]) as host-only cookies of the page's host; None when absent."""
    cookies = body.get("cookies")
    if cookies is None:
        return None
    if not isinstance(cookies, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("name"), str)
        and isinstance(c.get("value"), str)
        and _COOKIE_NAME.match(c["name"])
        and not _COOKIE_BAD.search(c["value"])
        for c in cookies
    ):
        raise HttpError(400, "bad_request", "field `cookies` must be [{name: token, value: string without ;,CR,LF}]")
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}/"
    return [{"name": c["name"], "value": c["value"], "url": origin} for c in cookies]


async def crawl(request: web.Request) -> web.Response:
    """POST /crawl: {"url", "timeout_s"?, "wait_for"?, "egress"?, "cookies"?} → the page's HTML, status, headers."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HttpError(400, "bad_request", f"body is not JSON: {exc}") from exc
    crawler = request.app[CRAWLER]
    url, timeout_s, wait_for = parse_request(body, crawler.config.default_timeout_s)
    policy = parse_egress(body)
    cookies = parse_cookies(body, url)
    if wait_for and crawler.config.simple:
        wait_for = None  # nothing renders in HTTP mode, so there is nothing to wait for
    return web.json_response(await crawler.crawl(url, timeout_s, wait_for, policy, cookies))


async def health(request: web.Request) -> web.Response:
    """GET /health: strategy, browser state and crawl4ai version; 503 when the browser died."""
    info = request.app[CRAWLER].health()
    return web.json_response(info, status=200 if info["status"] == "ok" else 503)


async def _crawler_ctx(app: web.Application) -> Any:
    crawler = Crawler(app[CONFIG])
    try:
        await crawler.start()
    except BaseException:
        await crawler.close()
        raise
    app[CRAWLER] = crawler
    log.info("crawl4ai %s ready: strategy=%s", crawler.version, crawler.config.strategy)
    yield
    await crawler.close()


def create_app(config: RunnerConfig | None = None, faults: fault_injection.Faults | None = None) -> web.Application:
    """The runner as an aiohttp Application; the crawler starts with the app and stops with it.

    faults: injected slowness (faults.py), for reliability tests only.
    """
    app = web.Application(middlewares=[errors_as_json], client_max_size=64 * 1024)
    app[CONFIG] = config or RunnerConfig()
    app.cleanup_ctx.append(_crawler_ctx)
    app.router.add_post("/crawl", crawl)
    app.router.add_get("/health", health)
    fault_injection.install(app, faults)
    return app


def main(argv: list[str] | None = None) -> None:
    """Parse --host/--port and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tools.crawl4ai_runner", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    fault_injection.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        faults = fault_injection.from_arguments(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s")
    prepare_environment()
    web.run_app(create_app(faults=faults), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
