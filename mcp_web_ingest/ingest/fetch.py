"""Fetching web pages over HTTP: manual redirects, retries, a size cap, content-type and charset handling."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Self
from urllib.parse import urljoin, urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import FetchError, InvalidInputError, UnsupportedContentError
from mcp_web_ingest.ingest.auth_profiles import RequestAuth
from mcp_web_ingest.ingest.content import (
    decode_html,
    parse_content_type,
    status_hint,
    status_phrase,
    too_large_message,
)
from mcp_web_ingest.ingest.formats.detect import (
    BINARY_FORMATS,
    MEDIA_TYPES,
    DocumentFormat,
    document_format,
    is_indexable_type,
    unsupported_message,
)
from mcp_web_ingest.ingest.ssrf import AddressPolicy, guarded_connector
from mcp_web_ingest.ingest.urls import split_credentials
from mcp_web_ingest.models import FetchedPage
from mcp_web_ingest.retry import TransientError, backoff, honour_retry_after, parse_retry_after, retry_transient

# Markdown first: sites that keep a Markdown rendering of their pages (for language models) send it; others send HTML.
ACCEPT_MARKDOWN_FIRST = (
    "text/markdown, text/html;q=0.9, application/xhtml+xml;q=0.9, text/x-rst;q=0.8, text/plain;q=0.8, "
    "application/pdf;q=0.7, application/x-ipynb+json;q=0.7, */*;q=0.1"
)
ACCEPT_HTML_FIRST = (
    "text/html, application/xhtml+xml;q=0.9, text/markdown;q=0.8, text/x-rst;q=0.8, text/plain;q=0.8, "
    "application/pdf;q=0.7, application/x-ipynb+json;q=0.7, */*;q=0.1"
)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# 500 is retried like the gateway errors: overloaded servers and app restarts often answer a bare 500 for a moment.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
ALLOWED_SCHEMES = frozenset({"http", "https"})

# aiohttp < 3.11 has no separate DNS error; there a DNS failure is retried like any connect error.
_DNS_ERROR: type[Exception] | tuple[()] = getattr(aiohttp, "ClientConnectorDNSError", ())
_CHUNK = 64 * 1024


class Fetcher(Protocol):
    """Anything that turns a URL into a fetched document (HTML, Markdown, text, reST, PDF, notebook)."""

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        auth: RequestAuth | None = None,
    ) -> FetchedPage:
        """Fetch one page, raising FetchError when it cannot be had.

        With validators from a previous fetch the request is conditional; a 304 answer comes back as a FetchedPage
        with status 304 and no text. ``auth`` goes, as HTTP Basic, only to the origin of ``url``.
        """
        ...

    def health(self) -> dict[str, Any] | None:
        """The state of a fetching service for the health report, or None when there is none to report."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class _Hop:
    """One HTTP exchange: either a redirect (location set) or a final response with its body."""

    status: int
    headers: CIMultiDictProxy[str]
    location: str | None = None
    body: bytes = b""
    media_type: str | None = None
    charset: str | None = None
    format: DocumentFormat = "html"


class HttpFetcher:
    """A Fetcher on one aiohttp ClientSession, created lazily inside the running event loop."""

    def __init__(self, settings: Settings, *, retry_base_wait_s: float = 0.5) -> None:
        self._settings = settings
        cap = settings.fetch_retry_max_wait_s
        self._wait = honour_retry_after(backoff(retry_base_wait_s, cap), cap)
        self._session: aiohttp.ClientSession | None = None
        self._policy = AddressPolicy.from_settings(settings)

    async def start(self) -> None:
        """Open the session now instead of on the first fetch."""
        self._ensure_session()

    def health(self) -> None:
        """The built-in fetcher has no service state to report."""
        return None

    async def aclose(self) -> None:
        """Close the session; a later fetch opens a new one."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            s = self._settings
            # Per request (each attempt of each redirect hop); sock_read also bounds a socket that stalls mid-body.
            timeout = aiohttp.ClientTimeout(
                total=s.fetch_timeout_s, sock_connect=s.fetch_connect_timeout_s, sock_read=s.fetch_timeout_s
            )
            accept = ACCEPT_MARKDOWN_FIRST if s.prefer_markdown else ACCEPT_HTML_FIRST
            headers = {"User-Agent": s.user_agent, "Accept": accept, "Accept-Encoding": "gzip, deflate"}
            # auto_decompress stays on: the size cap then counts decompressed bytes, which is what stops gzip bombs.
            # The connector resolves names through the SSRF policy and dials only the addresses it vetted.
            self._session = aiohttp.ClientSession(
                timeout=timeout, headers=headers, auto_decompress=True, connector=guarded_connector(self._policy)
            )
        return self._session

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        auth: RequestAuth | None = None,
    ) -> FetchedPage:
        """GET a document, following up to fetch_max_redirects redirects and retrying transient failures."""
        conditional: dict[str, str] = {}
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        if not is_http_url(url):
            raise InvalidInputError(f"Cannot fetch {url!r}: only absolute http:// and https:// URLs can be fetched")
        started = time.monotonic()
        current = url
        seen = [url]
        while True:
            await self._check_target(current)
            # Credentials never follow a redirect to a host they are not for, nor from HTTPS down to plain HTTP.
            downgrade = url.lower().startswith("https:") and not current.lower().startswith("https:")
            secrets = auth.headers_for(current) if auth is not None and not downgrade else {}
            hop = await self._request_with_retries(current, {**conditional, **secrets})
            if hop.location is None:
                break
            try:
                # A Location carrying user-info must not plant credentials in the stored URL.
                nxt = split_credentials(urljoin(current, hop.location))[0]
            except ValueError as exc:
                raise FetchError(f"{current} redirected to an invalid URL {hop.location!r}", url=url) from exc
            if nxt in seen:
                chain = " → ".join([*seen[seen.index(nxt) :], nxt])
                raise FetchError(f"Too many redirects: redirect loop {chain}", url=url, status=hop.status)
            if len(seen) > self._settings.fetch_max_redirects:
                raise FetchError(
                    f"Too many redirects (more than {self._settings.fetch_max_redirects}) starting at {url}; "
                    f"last Location: {nxt}",
                    url=url,
                    status=hop.status,
                )
            seen.append(nxt)
            current = nxt
        if hop.status == 304:
            return FetchedPage(
                url=url,
                final_url=current,
                status=304,
                content_type="text/html",
                text="",
                encoding="",
                etag=hop.headers.get("ETag") or etag,
                last_modified=hop.headers.get("Last-Modified") or last_modified,
                elapsed_s=time.monotonic() - started,
            )
        binary = hop.format in BINARY_FORMATS
        text, encoding = ("", "") if binary else decode_html(hop.body, hop.charset)
        return FetchedPage(
            url=url,
            final_url=current,
            status=hop.status,
            content_type=hop.media_type or MEDIA_TYPES[hop.format],
            text=text,
            encoding=encoding,
            format=hop.format,
            body=hop.body if binary else b"",
            etag=hop.headers.get("ETag"),
            last_modified=hop.headers.get("Last-Modified"),
            elapsed_s=time.monotonic() - started,
        )

    async def _check_target(self, url: str) -> None:
        """Vet each URL before it is requested (the first and every redirect hop) against the SSRF policy.

        This is what stops IP-literal hosts, which aiohttp never passes to a resolver; host names are vetted again by
        the connector's resolver at connect time, so a name that re-resolves elsewhere (DNS rebinding) is caught too.
        """
        if not is_http_url(url):
            raise FetchError(f"Refusing to fetch {url}: only http:// and https:// URLs can be fetched", url=url)
        await self._policy.check(url, resolve_names=False)

    async def _request_with_retries(self, url: str, headers: dict[str, str] | None = None) -> _Hop:
        """One hop, retried on transient failures with exponential backoff (or the server's Retry-After)."""
        attempts = self._settings.fetch_retries
        try:
            return await retry_transient(lambda: self._request_once(url, headers), attempts=attempts, wait=self._wait)
        except TransientError as exc:
            suffix = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
            raise FetchError(f"{exc}{suffix}", url=url, status=exc.status) from exc.__cause__

    async def _request_once(self, url: str, headers: dict[str, str] | None = None) -> _Hop:
        """Send one GET and read the response; aiohttp and asyncio errors leave as FetchError or TransientError."""
        session = self._ensure_session()
        host = urlsplit(url).hostname or url  # already validated by is_http_url
        try:
            async with session.get(url, allow_redirects=False, headers=headers) as resp:
                return await self._read_response(url, resp)
        except _DNS_ERROR as exc:
            # A name that does not resolve will not resolve a second later; retrying only delays the answer.
            raise FetchError(f"Could not connect to host {host}: {_os_reason(exc)}", url=url) from exc
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise FetchError(f"TLS failure talking to {host}: {exc}", url=url) from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransientError(f"Could not connect to host {host}: {_os_reason(exc)}") from exc
        except TimeoutError as exc:
            s = self._settings
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                msg = f"Timed out connecting to {host} (limit {s.fetch_connect_timeout_s:g} s)"
            else:
                msg = f"Timed out fetching {url} (limit {s.fetch_timeout_s:g} s)"
            raise TransientError(msg) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            raise TransientError(
                f"Connection to {host} broke while fetching {url}: {exc or type(exc).__name__}"
            ) from exc
        except aiohttp.ClientError as exc:
            raise FetchError(f"HTTP error fetching {url}: {exc or type(exc).__name__}", url=url) from exc
        except ValueError as exc:  # yarl/aiohttp reject some malformed URLs with ValueError/UnicodeError
            raise FetchError(f"Invalid URL {url!r}: {exc}", url=url) from exc
        except OSError as exc:
            raise TransientError(f"Network error fetching {url}: {exc}") from exc

    async def _read_response(self, url: str, resp: aiohttp.ClientResponse) -> _Hop:
        """Classify the status, check the content type and read the capped body."""
        status = resp.status
        reason = resp.reason or status_phrase(status)
        location = resp.headers.get("Location")
        if status in REDIRECT_STATUSES and location:
            return _Hop(status=status, headers=resp.headers, location=location)
        if status == 304:  # only ever sent to a conditional request: the stored copy is current
            return _Hop(status=status, headers=resp.headers)
        if status in TRANSIENT_STATUSES:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            busy = "the server is rate-limiting requests" if status == 429 else "the server failed or is overloaded"
            cap = self._settings.fetch_retry_max_wait_s
            if retry_after is not None and retry_after > cap:
                when = (datetime.now(UTC) + timedelta(seconds=retry_after)).strftime("%Y-%m-%d %H:%M:%S UTC")
                raise FetchError(
                    f"HTTP {status} {reason} for {url}: the server asks to wait {retry_after:.0f} s, more than "
                    f"FETCH_RETRY_MAX_WAIT_S={cap:g}; try again after {when}",
                    url=url,
                    status=status,
                )
            raise TransientError(f"HTTP {status} {reason} for {url}: {busy}", status=status, retry_after=retry_after)
        if not 200 <= status < 300 or status == 204:
            raise FetchError(f"HTTP {status} {reason} for {url}: {status_hint(status)}", url=url, status=status)

        media_type, charset = parse_content_type(resp.headers.get("Content-Type"))
        if not is_indexable_type(media_type):
            raise UnsupportedContentError(unsupported_message(url, str(media_type)), url=url, status=status)
        limit = self._settings.fetch_max_bytes
        declared = resp.content_length
        if declared is not None and declared > limit:
            raise FetchError(
                too_large_message(url, limit, f"Content-Length says {declared} bytes"), url=url, status=status
            )

        # Counted after aiohttp's transparent decompression, so a tiny gzip body cannot expand past the cap.
        chunks: list[bytes] = []
        received = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            received += len(chunk)
            if received > limit:
                raise FetchError(
                    too_large_message(url, limit, f"more than {limit} bytes arrived"), url=url, status=status
                )
            chunks.append(chunk)
        body = b"".join(chunks)
        fmt = document_format(url, status, media_type, body, charset)
        return _Hop(status=status, headers=resp.headers, body=body, media_type=media_type, charset=charset, format=fmt)


def is_http_url(url: str) -> bool:
    """An absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ALLOWED_SCHEMES and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    return os_error.strerror or str(os_error) or type(os_error).__name__
