"""Fetching web pages over HTTP: manual redirects, retries, a size cap, content-type and charset handling."""

from __future__ import annotations

import codecs
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Protocol, Self
from urllib.parse import urljoin, urlsplit

import aiohttp
from multidict import CIMultiDictProxy
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import FetchError, InvalidInputError, UnsupportedContentError
from mcp_web_ingest.ingest.ssrf import AddressPolicy, guarded_connector
from mcp_web_ingest.ingest.urls import Credentials, same_origin, split_credentials
from mcp_web_ingest.models import FetchedPage

ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# 500 is retried like the gateway errors: overloaded servers and app restarts often answer a bare 500 for a moment.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
ALLOWED_SCHEMES = frozenset({"http", "https"})

# aiohttp < 3.11 has no separate DNS error; there a DNS failure is retried like any connect error.
_DNS_ERROR: type[Exception] | tuple[()] = getattr(aiohttp, "ClientConnectorDNSError", ())
_CHUNK = 64 * 1024
_SNIFF_BYTES = 1024
_META_SCAN_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Magic numbers of formats that sometimes arrive mislabelled as text/html.
_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b", b"\x7fELF")
# Browsers decode these labels as windows-1252 (WHATWG Encoding Standard); so do we, for the same text.
_LATIN1_ALIASES = frozenset({"latin-1", "iso8859-1", "ascii"})

_STATUS_HINTS = {
    400: "the server rejected the request",
    401: "the page needs a login; only public pages can be indexed",
    403: "access is forbidden; only public pages can be indexed",
    404: "the page does not exist; check the URL",
    410: "the page has been removed",
    451: "the page is unavailable for legal reasons",
}


class Fetcher(Protocol):
    """Anything that turns a URL into a decoded HTML page."""

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        auth: Credentials | None = None,
    ) -> FetchedPage:
        """Fetch one page, raising FetchError when it cannot be had.

        With validators from a previous fetch the request is conditional; a 304 answer comes back as a FetchedPage
        with status 304 and no text. ``auth`` goes, as HTTP Basic, only to the origin of ``url``.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class _Transient(Exception):
    """A failure worth another attempt; carries the error to raise if attempts run out."""

    def __init__(self, error: FetchError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Hop:
    """One HTTP exchange: either a redirect (location set) or a final response with its body."""

    status: int
    headers: CIMultiDictProxy[str]
    location: str | None = None
    body: bytes = b""
    media_type: str | None = None
    charset: str | None = None


class HttpFetcher:
    """A Fetcher on one aiohttp ClientSession, created lazily inside the running event loop."""

    def __init__(self, settings: Settings, *, retry_base_wait_s: float = 0.5) -> None:
        self._settings = settings
        # base, 2*base, 4*base ... plus up to base of jitter so that many clients do not retry in lockstep.
        self._backoff = wait_exponential_jitter(
            multiplier=retry_base_wait_s, max=settings.fetch_retry_max_wait_s, jitter=retry_base_wait_s
        )
        self._session: aiohttp.ClientSession | None = None
        self._policy = AddressPolicy.from_settings(settings)

    async def start(self) -> None:
        """Open the session now instead of on the first fetch."""
        self._ensure_session()

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
            headers = {"User-Agent": s.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
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
        auth: Credentials | None = None,
    ) -> FetchedPage:
        """GET an HTML page, following up to fetch_max_redirects redirects and retrying transient failures."""
        conditional: dict[str, str] = {}
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        if not _is_http_url(url):
            raise InvalidInputError(f"Cannot fetch {url!r}: only absolute http:// and https:// URLs can be fetched")
        started = time.monotonic()
        current = url
        seen = [url]
        while True:
            await self._check_target(current)
            # Like browsers, credentials never follow a redirect to another origin.
            with_auth = auth is not None and same_origin(current, url)
            hop = await self._request_with_retries(
                current, {**conditional, **_basic(auth)} if with_auth else conditional
            )
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
        text, encoding = decode_html(hop.body, hop.charset)
        return FetchedPage(
            url=url,
            final_url=current,
            status=hop.status,
            content_type=hop.media_type or "text/html",
            text=text,
            encoding=encoding,
            etag=hop.headers.get("ETag"),
            last_modified=hop.headers.get("Last-Modified"),
            elapsed_s=time.monotonic() - started,
        )

    async def _check_target(self, url: str) -> None:
        """Vet each URL before it is requested (the first and every redirect hop) against the SSRF policy.

        This is what stops IP-literal hosts, which aiohttp never passes to a resolver; host names are vetted again by
        the connector's resolver at connect time, so a name that re-resolves elsewhere (DNS rebinding) is caught too.
        """
        if not _is_http_url(url):
            raise FetchError(f"Refusing to fetch {url}: only http:// and https:// URLs can be fetched", url=url)
        await self._policy.check(url, resolve_names=False)

    async def _request_with_retries(self, url: str, headers: dict[str, str] | None = None) -> _Hop:
        """One hop, retried on transient failures with exponential backoff (or the server's Retry-After)."""
        attempts = self._settings.fetch_retries
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._request_once(url, headers)
        except _Transient as exc:
            suffix = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
            err = exc.error
            raise FetchError(f"{err}{suffix}", url=err.url, status=err.status) from exc.__cause__
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        cap = self._settings.fetch_retry_max_wait_s
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, cap)
        return self._backoff(state)

    async def _request_once(self, url: str, headers: dict[str, str] | None = None) -> _Hop:
        """Send one GET and read the response; aiohttp and asyncio errors leave as FetchError or _Transient."""
        session = self._ensure_session()
        host = urlsplit(url).hostname or url  # already validated by _is_http_url
        try:
            async with session.get(url, allow_redirects=False, headers=headers) as resp:
                return await self._read_response(url, resp)
        except _DNS_ERROR as exc:
            # A name that does not resolve will not resolve a second later; retrying only delays the answer.
            raise FetchError(f"Could not connect to host {host}: {_os_reason(exc)}", url=url) from exc
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise FetchError(f"TLS failure talking to {host}: {exc}", url=url) from exc
        except aiohttp.ClientConnectorError as exc:
            err = FetchError(f"Could not connect to host {host}: {_os_reason(exc)}", url=url)
            raise _Transient(err) from exc
        except TimeoutError as exc:
            s = self._settings
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                msg = f"Timed out connecting to {host} (limit {s.fetch_connect_timeout_s:g} s)"
            else:
                msg = f"Timed out fetching {url} (limit {s.fetch_timeout_s:g} s)"
            raise _Transient(FetchError(msg, url=url)) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            err = FetchError(f"Connection to {host} broke while fetching {url}: {exc or type(exc).__name__}", url=url)
            raise _Transient(err) from exc
        except aiohttp.ClientError as exc:
            raise FetchError(f"HTTP error fetching {url}: {exc or type(exc).__name__}", url=url) from exc
        except ValueError as exc:  # yarl/aiohttp reject some malformed URLs with ValueError/UnicodeError
            raise FetchError(f"Invalid URL {url!r}: {exc}", url=url) from exc
        except OSError as exc:
            raise _Transient(FetchError(f"Network error fetching {url}: {exc}", url=url)) from exc

    async def _read_response(self, url: str, resp: aiohttp.ClientResponse) -> _Hop:
        """Classify the status, check the content type and read the capped body."""
        status = resp.status
        reason = resp.reason or _phrase(status)
        location = resp.headers.get("Location")
        if status in REDIRECT_STATUSES and location:
            return _Hop(status=status, headers=resp.headers, location=location)
        if status == 304:  # only ever sent to a conditional request: the stored copy is current
            return _Hop(status=status, headers=resp.headers)
        if status in TRANSIENT_STATUSES:
            retry_after = _parse_retry_after(resp.headers.get("Retry-After"))
            busy = "the server is rate-limiting requests" if status == 429 else "the server failed or is overloaded"
            err = FetchError(f"HTTP {status} {reason} for {url}: {busy}", url=url, status=status)
            cap = self._settings.fetch_retry_max_wait_s
            if retry_after is not None and retry_after > cap:
                when = (datetime.now(UTC) + timedelta(seconds=retry_after)).strftime("%Y-%m-%d %H:%M:%S UTC")
                raise FetchError(
                    f"HTTP {status} {reason} for {url}: the server asks to wait {retry_after:.0f} s, more than "
                    f"FETCH_RETRY_MAX_WAIT_S={cap:g}; try again after {when}",
                    url=url,
                    status=status,
                )
            raise _Transient(err, retry_after)
        if not 200 <= status < 300 or status == 204:
            hint = _STATUS_HINTS.get(status) or _generic_hint(status)
            raise FetchError(f"HTTP {status} {reason} for {url}: {hint}", url=url, status=status)

        media_type, charset = parse_content_type(resp.headers.get("Content-Type"))
        if media_type is not None and media_type not in HTML_TYPES:
            raise UnsupportedContentError(_not_html(url, media_type), url=url, status=status)
        limit = self._settings.fetch_max_bytes
        declared = resp.content_length
        if declared is not None and declared > limit:
            raise FetchError(_too_large(url, limit, f"Content-Length says {declared} bytes"), url=url, status=status)

        # Counted after aiohttp's transparent decompression, so a tiny gzip body cannot expand past the cap.
        chunks: list[bytes] = []
        received = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            received += len(chunk)
            if received > limit:
                raise FetchError(_too_large(url, limit, f"more than {limit} bytes arrived"), url=url, status=status)
            chunks.append(chunk)
        body = b"".join(chunks)

        if media_type is None:
            if not looks_like_html(body):
                raise UnsupportedContentError(
                    f"{url} sent no Content-Type and does not look like HTML; only HTML pages can be indexed",
                    url=url,
                    status=status,
                )
            media_type = "text/html"
        elif looks_binary(body, charset):
            raise UnsupportedContentError(
                f"{url} claims to be {media_type} but its body is binary data; only HTML pages can be indexed",
                url=url,
                status=status,
            )
        return _Hop(status=status, headers=resp.headers, body=body, media_type=media_type, charset=charset)


def _basic(auth: Credentials | None) -> dict[str, str]:
    return {} if auth is None else {"Authorization": aiohttp.encode_basic_auth(auth.username, auth.password)}


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """Split a Content-Type header into (lower-case media type, charset label); None where absent."""
    if not value or not value.strip():
        return None, None
    media, *params = value.split(";")
    charset = None
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            charset = val.strip().strip("\"'").strip() or None
    return media.strip().lower() or None, charset


def looks_like_html(body: bytes) -> bool:
    """Sniff an unlabelled body: an HTML doctype or tag near the start."""
    head = body[:_SNIFF_BYTES]
    for bom, enc in _BOMS:
        if head.startswith(bom):
            head = head.decode(enc, errors="ignore").encode("ascii", errors="ignore")
            break
    head = head.lstrip().lower()
    if looks_binary(head, None):
        return False
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def looks_binary(body: bytes, charset: str | None) -> bool:
    """True for a known binary magic number, or NUL bytes in a body that is not UTF-16/32."""
    head = body[:_SNIFF_BYTES].lstrip()
    if head.startswith(_BINARY_MAGIC):
        return True
    wide = (charset or "").lower().replace("_", "-").startswith(("utf-16", "utf-32"))
    if wide or body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    return b"\x00" in head


def _codec_name(label: str | None) -> str | None:
    """Python's codec name for a charset label, or None when unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None
    return "cp1252" if name in _LATIN1_ALIASES else name


def meta_charset(body: bytes) -> str | None:
    """The charset of a <meta charset> or <meta http-equiv=Content-Type> tag in the first 4 KB."""
    match = _META_CHARSET.search(body[:_META_SCAN_BYTES])
    if not match:
        return None
    name = _codec_name(match.group(1).decode("ascii", errors="ignore"))
    # A meta tag readable as ASCII cannot really be UTF-16; the HTML spec reads such a claim as UTF-8.
    if name and name.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return name


def decode_html(body: bytes, header_charset: str | None) -> tuple[str, str]:
    """Decode an HTML body, returning (text, codec used); never raises.

    Order: BOM (definitive, as in browsers), the Content-Type charset, the <meta> charset, then UTF-8. The
    first that decodes strictly wins. When none does, a declared legacy charset is used with replacement
    characters; otherwise cp1252 (a page labelled UTF-8 that is not is usually cp1252). No statistical
    detection: charset_normalizer is not a dependency, and short pages make its guesses unreliable.
    """
    candidates: list[tuple[str, bytes]] = []
    for bom, enc in _BOMS:
        if body.startswith(bom):
            candidates.append((enc, body[len(bom) :]))
            break
    for name in (_codec_name(header_charset), meta_charset(body), "utf-8"):
        if name and name not in (c for c, _ in candidates):
            candidates.append((name, body))
    for name, data in candidates:
        try:
            return data.decode(name), name
        except (UnicodeDecodeError, LookupError):
            continue
    legacy = [c for c, _ in candidates if c not in ("utf-8", "utf-16-le", "utf-16-be")]
    fallback = legacy[0] if legacy else "cp1252"
    return body.decode(fallback, errors="replace"), fallback


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _is_http_url(url: str) -> bool:
    """An absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ALLOWED_SCHEMES and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    return os_error.strerror or str(os_error) or type(os_error).__name__


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Status"


def _generic_hint(status: int) -> str:
    if status == 204:
        return "the server returned no content"
    if 300 <= status < 400:
        return "the server answered with a redirect status but no usable Location"
    if 400 <= status < 500:
        return "the server refused the request"
    return "the server failed"


def _not_html(url: str, media_type: str) -> str:
    return f"{url} is not an HTML page (Content-Type: {media_type}); only HTML pages can be indexed"


def _too_large(url: str, limit: int, detail: str) -> str:
    return f"{url} is larger than the limit of {limit} bytes (FETCH_MAX_BYTES): {detail}"
