"""HTTP for a crawl's discovery files (sitemaps, llms.txt): capped GETs whose every redirect hop obeys robots.txt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urljoin, urlsplit

import aiohttp

from mcp_web_ingest.crawl.robots import MAX_REDIRECTS, RobotsRules
from mcp_web_ingest.errors import FetchError, InvalidInputError
from mcp_web_ingest.ingest.urls import normalize_url

__all__ = ["GET_ERRORS", "Disallowed", "RobotsLookup", "get_capped", "robots_gate"]

RobotsLookup = Callable[[str], Awaitable[RobotsRules]]  # a URL → the robots.txt rules of its origin

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# What a discovery request may raise: transport errors, and the SSRF guard's FetchError (BlockedAddressError).
GET_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, ValueError, FetchError)


class Disallowed(Exception):
    """A redirect hop that robots.txt disallows, or one hop too many."""


async def get_capped(
    session: aiohttp.ClientSession,
    url: str,
    max_bytes: int,
    timeout_s: float,
    allowed: Callable[[str], Awaitable[bool]] | None = None,
) -> tuple[int, str, bytes]:
    """GET ``url``: (status, media type, body up to max_bytes + 1 bytes). Raises GET_ERRORS or Disallowed.

    Redirects are followed here, not by aiohttp, so that robots.txt (``allowed``) is asked about every hop.
    """
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with session.get(current, timeout=timeout, allow_redirects=False) as resp:
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECTS or not location:
                return resp.status, *await _read(resp, max_bytes)
        current = urljoin(current, location)
        if allowed is not None and not await allowed(current):
            raise Disallowed(f"redirected to {current}, disallowed by robots.txt")
    raise Disallowed(f"more than {MAX_REDIRECTS} redirects")


async def _read(resp: aiohttp.ClientResponse, max_bytes: int) -> tuple[str, bytes]:
    media = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not 200 <= resp.status < 300:
        return media, b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            break
    return media, b"".join(chunks)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def robots_gate(
    origin: str, robots: RobotsRules | None, robots_for: RobotsLookup | None
) -> Callable[[str], Awaitable[bool]]:
    """Whether robots.txt lets us fetch a URL: ``robots`` on ``origin``, ``robots_for`` elsewhere (else allowed)."""

    async def allowed(url: str) -> bool:
        try:
            own = _origin(normalize_url(url)) == origin
        except (ValueError, InvalidInputError):
            return False
        if robots is not None and (own or robots_for is None):
            return not own or robots.allowed(url)
        return robots_for is None or (await robots_for(url)).allowed(url)

    return allowed
