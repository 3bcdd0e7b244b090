"""Finding URLs to crawl beyond a page's own links (ingest/links.py): sitemaps (indexes, gzip, text), llms.txt."""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.parsers import expat

import aiohttp

from mcp_web_ingest.crawl.robots import RobotsRules
from mcp_web_ingest.crawl.scope import path_prefix
from mcp_web_ingest.crawl.seeds_http import GET_ERRORS, Disallowed, RobotsLookup, get_capped, robots_gate
from mcp_web_ingest.ingest.links import absolute_url
from mcp_web_ingest.ingest.urls import normalize_url

__all__ = [
    "MAX_SITEMAP_BYTES",
    "MAX_SITEMAP_URLS",
    "RobotsLookup",
    "SitemapDoc",
    "discover_sitemap_urls",
    "fetch_llms_txt",
    "parse_llms_txt",
    "parse_sitemap",
]

log = logging.getLogger(__name__)

# The sitemap protocol's limits per file: 50,000 URLs and 50 MB (52,428,800 bytes) uncompressed.
MAX_SITEMAP_BYTES = 50 * 1024 * 1024
MAX_SITEMAP_URLS = 50_000
MAX_LLMS_TXT_BYTES = 2 * 1024 * 1024
_MAX_LOC_CHARS = 4096
_MD_LINK = re.compile(r"(!?)\[[^\]\n]*\]\(\s*<?([^()\s<>]+)>?(?:\s+[\"'][^\"'\n]*[\"'])?\s*\)|<(https?://[^>\s]+)>")


@dataclass(frozen=True)
class SitemapDoc:
    """One parsed sitemap: page URLs with their lastmod, or (for a sitemap index) child sitemap URLs."""

    urls: tuple[tuple[str, str | None], ...] = ()
    sitemaps: tuple[str, ...] = ()
    error: str | None = None  # why parsing stopped early; what was read before is kept


class _Stop(Exception):
    """Raised inside expat handlers to end parsing (a DTD, or the URL limit)."""


def parse_sitemap(data: bytes, *, max_bytes: int = MAX_SITEMAP_BYTES, max_urls: int = MAX_SITEMAP_URLS) -> SitemapDoc:
    """Parse an XML sitemap or sitemap index (gzip-compressed or not, any namespace) or a plain-text sitemap.

    Never raises on bad input: a DTD or entity declaration (billion laughs, external entities) is refused
    before anything is expanded, malformed XML keeps what came before the error, oversize input is cut.
    """
    error = None
    if data[:2] == b"\x1f\x8b":
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = inflater.decompress(data, max_bytes + 1)  # bounded output: a gzip bomb stops here
        except zlib.error as exc:
            return SitemapDoc(error=f"bad gzip data: {exc}")
        if not inflater.eof and len(data) <= max_bytes:
            error = "truncated gzip data"
    if len(data) > max_bytes:
        data, error = data[:max_bytes], f"larger than {max_bytes} bytes uncompressed: the rest ignored"
    data = data.removeprefix(b"\xef\xbb\xbf")
    if not data.lstrip().startswith((b"<", b"\xff\xfe", b"\xfe\xff")):  # XML, possibly UTF-16 with its BOM
        return _parse_text_sitemap(data, max_urls, error)
    urls: dict[str, str | None] = {}
    children: dict[str, None] = {}
    stack: list[str] = []
    text: dict[str, list[str]] = {}  # "loc"/"lastmod" → pieces of character data of the current entry

    def forbid(*_args: object) -> None:
        raise _Stop("DTD or entity declarations are not allowed in sitemaps")

    def start(name: str, _attrs: object) -> None:
        local = name.rpartition("}")[2]
        if local in ("url", "sitemap"):
            text.clear()
        stack.append(local)

    def end(_name: str) -> None:
        local = stack.pop()
        if local not in ("url", "sitemap"):
            return
        raw = "".join(text.get("loc", [])).strip()
        # Sitemap locs must be absolute (protocol); a relative one has no base to resolve against.
        loc = absolute_url(raw, raw) if raw.lower().startswith(("http://", "https://")) else None
        if loc is None:
            return
        if local == "sitemap":
            children.setdefault(loc)
            return
        lastmod = "".join(text.get("lastmod", [])).strip() or None
        urls.setdefault(loc, lastmod)
        if len(urls) >= max_urls:
            raise _Stop(f"more than {max_urls} URLs: the rest ignored")

    def chars(data: str) -> None:
        # Only <loc>/<lastmod> directly in <url>/<sitemap>; <image:loc> and friends sit one level deeper.
        if len(stack) >= 2 and stack[-1] in ("loc", "lastmod") and stack[-2] in ("url", "sitemap"):
            parts = text.setdefault(stack[-1], [])
            if sum(map(len, parts)) < _MAX_LOC_CHARS:
                parts.append(data)

    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = forbid
    parser.EntityDeclHandler = forbid
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except _Stop as exc:
        error = error or str(exc)
    except (expat.ExpatError, ValueError) as exc:
        error = error or f"malformed XML: {exc}"  # after a cut, the cut is the news
    return SitemapDoc(tuple(urls.items()), tuple(children), error)


def _parse_text_sitemap(data: bytes, max_urls: int, error: str | None) -> SitemapDoc:
    """A text sitemap: one absolute URL per line (UTF-8); other lines are ignored."""
    urls: dict[str, None] = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.lower().startswith(("http://", "https://")) and (url := absolute_url(line, line)):
            urls.setdefault(url)
            if len(urls) >= max_urls:
                error = f"more than {max_urls} URLs: the rest ignored"
                break
    return SitemapDoc(tuple((u, None) for u in urls), (), error)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def discover_sitemap_urls(
    session: aiohttp.ClientSession,
    start_url: str,
    robots: RobotsRules,
    *,
    robots_for: RobotsLookup | None = None,
    max_sitemaps: int = 50,
    max_urls: int = MAX_SITEMAP_URLS,
    max_depth: int = 3,
    timeout_s: float = 30.0,
    problems: list[str] | None = None,
) -> list[tuple[str, str | None]]:
    """(url, lastmod) pairs from the robots.txt ``Sitemap:`` lines, else ``/sitemap.xml``, following indexes.

    At most ``max_sitemaps`` files are read, indexes nest at most ``max_depth`` deep, each file once. Every fetch but
    that of a ``Sitemap:`` line's own URL (listing it is the owner's permission) obeys robots.txt: ``robots`` on the
    start URL's origin, ``robots_for`` on others (not checked without it), redirect hops included. Each sitemap stands
    alone: one that is disallowed, blocked or failing is skipped, with a line saying why in ``problems`` when given.
    """
    start = normalize_url(start_url)
    origin = _origin(start)
    allowed = robots_gate(origin, robots, robots_for)
    listed = [(u, 0) for u in robots.sitemaps]
    queue = listed or [(origin + "/sitemap.xml", 0)]
    exempt = {u for u, _ in listed}
    seen: set[str] = set()
    found: dict[str, str | None] = {}
    report = problems if problems is not None else []
    while queue and len(seen) < max_sitemaps and len(found) < max_urls:
        raw, depth = queue.pop(0)
        # Sitemap URLs must be absolute; a path-absolute one ("/sitemap.xml") is read leniently against the origin.
        url = absolute_url(raw, origin + "/") if raw.lower().startswith(("http://", "https://", "/")) else None
        if url is None or url in seen:
            if url is None:
                report.append(f"sitemap {raw!r}: not an absolute http(s) URL")
            continue
        seen.add(url)
        if not (depth == 0 and raw in exempt) and not await allowed(url):
            report.append(f"sitemap {url}: disallowed by robots.txt")
            continue
        try:
            status, _media, body = await get_capped(session, url, MAX_SITEMAP_BYTES, timeout_s, allowed)
        except (*GET_ERRORS, Disallowed) as exc:
            report.append(f"sitemap {url}: {exc or type(exc).__name__}")
            continue
        if not 200 <= status < 300:
            report.append(f"sitemap {url}: HTTP {status}")
            continue
        doc = parse_sitemap(body)
        if doc.error:
            report.append(f"sitemap {url}: {doc.error}")
        for loc, lastmod in doc.urls:
            if len(found) >= max_urls:
                break
            found.setdefault(loc, lastmod)
        if depth < max_depth:
            queue.extend((child, depth + 1) for child in doc.sitemaps)
        elif doc.sitemaps:
            report.append(f"sitemap {url}: nested deeper than {max_depth} levels, children ignored")
    if queue and len(seen) >= max_sitemaps:
        report.append(f"more than {max_sitemaps} sitemaps: the rest ignored")
    for line in report:
        log.debug("%s", line)
    return list(found.items())


def parse_llms_txt(text: str, base_url: str) -> list[str]:
    """Linked URLs of an llms.txt (markdown: ``[name](url)`` and ``<url>``), absolute, normalised, deduplicated."""
    urls: dict[str, None] = {}
    for m in _MD_LINK.finditer(text):
        if m.group(1):  # an image, not a page
            continue
        url = absolute_url(m.group(2) or m.group(3), base_url)
        if url is not None:
            urls.setdefault(url)
    return list(urls)


def _llms_locations(start_url: str) -> Iterable[str]:
    start = normalize_url(start_url)
    origin = _origin(start)
    yield origin + "/llms.txt"
    prefix = path_prefix(urlsplit(start).path)
    if prefix != "/":
        yield origin + prefix + "llms.txt"


async def fetch_llms_txt(
    session: aiohttp.ClientSession,
    start_url: str,
    *,
    robots: RobotsRules | None = None,
    robots_for: RobotsLookup | None = None,
    timeout_s: float = 30.0,
    problems: list[str] | None = None,
) -> list[str]:
    """URLs listed in ``/llms.txt`` and in ``llms.txt`` under the start URL's path prefix; missing files give [].

    Each fetch, redirect hops included, obeys robots.txt: ``robots`` on the start URL's origin, ``robots_for`` on
    others (and on the start's origin too when ``robots`` is None). A file that is disallowed, blocked or failing is
    skipped, with a line saying why in ``problems`` when given; a missing one is not a problem.
    """
    start = normalize_url(start_url)
    allowed = robots_gate(_origin(start), robots, robots_for)
    report = problems if problems is not None else []
    urls: dict[str, None] = {}
    for location in _llms_locations(start):
        if not await allowed(location):
            report.append(f"llms.txt {location}: disallowed by robots.txt")
            continue
        try:
            status, media, body = await get_capped(session, location, MAX_LLMS_TXT_BYTES, timeout_s, allowed)
        except (*GET_ERRORS, Disallowed) as exc:
            report.append(f"llms.txt {location}: {exc or type(exc).__name__}")
            continue
        # Sites without the file often answer 200 with their HTML "not found" page.
        if not 200 <= status < 300 or media in ("text/html", "application/xhtml+xml"):
            continue
        text = body[:MAX_LLMS_TXT_BYTES].decode("utf-8", errors="replace")
        for url in parse_llms_txt(text, location):
            urls.setdefault(url)
    for line in report:
        log.debug("%s", line)
    return list(urls)
