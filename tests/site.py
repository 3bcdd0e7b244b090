"""A local documentation-like website for tests: static pages from site_pages/ plus misbehaving dynamic routes.

Use ``async with serve_site() as base_url:`` to run it on 127.0.0.1 with a free port. Pass your own
``make_site_app()`` result to inspect ``app[HITS]`` (request counts per path) afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import html
import mimetypes
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from aiohttp import hdrs, web

from .formats_site import add_format_routes

PAGES_DIR = Path(__file__).parent / "site_pages"

HITS = web.AppKey("hits", Counter)  # path -> number of requests seen, for asserting retries and re-fetches
_COUNTERS = web.AppKey("counters", Counter)  # (route, key) -> requests, for /flaky and /ratelimited
_ETAG_PAGE = web.AppKey("etag_page", dict)  # {"body": bytes, "modified": datetime}

# Pages whose Content-Type header is part of what they test; every other .html file is served as UTF-8.
_CONTENT_TYPES = {
    "latin1.html": "text/html; charset=iso-8859-1",
    "nocharset.html": "text/html",
    "meta-charset.html": "text/html",
    "utf8-bom.html": "text/html",
    "xhtml.xhtml": "application/xhtml+xml",
}
# Extra paths that serve an existing file under a different (wrong) label.
_ALIASES = {
    "mislabelled.html": ("nocharset.html", "text/html; charset=utf-8"),  # cp1252 bytes claiming UTF-8
}

_PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n" + bytes(range(256))
_BINARY_BYTES = bytes(range(256)) * 16
_ETAG_INITIAL = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Versioned page</title></head>
<body><h1 id="versioned">Versioned page</h1><p>The first version of the wibblequark changelog.</p></body></html>
"""


def _page(title: str, body: str) -> str:
    """A small, well-formed HTML page."""
    t = html.escape(title)
    return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{t}</title></head>\n<body>{body}</body></html>\n'


def _html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=headers)


@web.middleware
async def _count_hits(request: web.Request, handler):  # type: ignore[no-untyped-def]
    request.app[HITS][request.path] += 1
    return await handler(request)


async def _static(request: web.Request) -> web.StreamResponse:
    """Files from site_pages/, with the Content-Type each one is meant to test."""
    rel = request.match_info.get("path") or "index.html"
    if rel.endswith("/"):
        rel += "index.html"
    source, content_type = _ALIASES.get(rel, (rel, _CONTENT_TYPES.get(rel)))
    path = (PAGES_DIR / source).resolve()
    if not path.is_relative_to(PAGES_DIR.resolve()) or not path.is_file():
        return _html(_page("Not found", "<h1>Not found</h1>"), status=404)
    if content_type is None:
        guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        content_type = f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed
    return web.Response(body=path.read_bytes(), headers={"Content-Type": content_type})


async def _status(request: web.Request) -> web.Response:
    """/status/{code}: answers with that status (e.g. 404, 500) and a small HTML body."""
    code = int(request.match_info["code"])
    return _html(_page(f"Status {code}", f"<h1>Status {code}</h1>"), status=code)


async def _flaky(request: web.Request) -> web.Response:
    """/flaky?key=K&fail=N: HTTP 500 for the first N (default 2) requests per key, then a page."""
    key = request.query.get("key", "")
    fail = int(request.query.get("fail", "2"))
    counters = request.app[_COUNTERS]
    counters["flaky", key] += 1
    if counters["flaky", key] <= fail:
        return _html(_page("Error", "<h1>Internal Server Error</h1>"), status=500)
    return _html(_page("Flaky page", "<h1>Flaky page</h1><p>The plonkmeister finally answered.</p>"))


async def _ratelimited(request: web.Request) -> web.Response:
    """/ratelimited?key=K&after=S&date=1: first request per key gets 429 with Retry-After S (seconds or date)."""
    key = request.query.get("key", "")
    after = int(request.query.get("after", "1"))
    counters = request.app[_COUNTERS]
    counters["ratelimited", key] += 1
    if counters["ratelimited", key] == 1:
        if request.query.get("date") == "1":
            retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=after), usegmt=True)
        else:
            retry_after = str(after)
        body = _page("Too Many Requests", "<h1>Slow down</h1>")
        return _html(body, status=429, headers={"Retry-After": retry_after})
    return _html(_page("Rate-limited page", "<h1>Rate-limited page</h1><p>Thanks for waiting.</p>"))


def _redirect(location: str, status: int = 302) -> web.Response:
    return web.Response(status=status, headers={"Location": location}, text=f"Redirecting to {location}")


async def _redirect_install(request: web.Request) -> web.Response:
    """/redirect: 302 to /guide/install.html (a path-absolute Location)."""
    return _redirect("/guide/install.html")


async def _redirect_loop_a(request: web.Request) -> web.Response:
    """/redirect-loop: 302 to /redirect-loop/b, which sends the client back here."""
    return _redirect("/redirect-loop/b")


async def _redirect_loop_b(request: web.Request) -> web.Response:
    """/redirect-loop/b: 302 back to /redirect-loop."""
    return _redirect("/redirect-loop")


async def _redirect_chain(request: web.Request) -> web.Response:
    """/redirect-chain/N: N relative redirects (./N-1 ...) ending at a page at /redirect-chain/0."""
    n = int(request.match_info["n"])
    if n <= 0:
        return _html(_page("End of chain", "<h1>End of chain</h1><p>The redirect chain ends here.</p>"))
    return _redirect(f"./{n - 1}", status=301 if n % 2 else 307)


async def _redirect_to(request: web.Request) -> web.Response:
    """/redirect-to?location=URL&status=302: redirects anywhere (other schemes, other hosts)."""
    return _redirect(request.query["location"], status=int(request.query.get("status", "302")))


async def _binary(request: web.Request) -> web.Response:
    """/binary.bin: application/octet-stream bytes."""
    return web.Response(body=_BINARY_BYTES, content_type="application/octet-stream")


async def _pdf(request: web.Request) -> web.Response:
    """/doc.pdf: a PDF (by magic number) labelled application/pdf."""
    return web.Response(body=_PDF_BYTES, content_type="application/pdf")


async def _lying(request: web.Request) -> web.Response:
    """/lying.html: PDF bytes labelled text/html."""
    return web.Response(body=_PDF_BYTES, headers={"Content-Type": "text/html; charset=utf-8"})


async def _plain(request: web.Request) -> web.Response:
    """/plain.txt: text/plain."""
    return web.Response(text="Froobnicator plain-text release notes.\n", content_type="text/plain")


class _NoContentTypeResponse(web.StreamResponse):
    """A response sent without any Content-Type header."""

    # aiohttp adds "application/octet-stream" to every non-empty response while preparing the headers
    # (RFC 9110 8.3 only says SHOULD); drop it at the last moment, which needs this private hook.
    async def _write_headers(self) -> None:
        self._headers.popall(hdrs.CONTENT_TYPE, None)
        await super()._write_headers()


async def _no_type(request: web.Request) -> web.StreamResponse:
    """/no-content-type.html and /no-content-type.bin: no Content-Type header at all (HTML or binary body)."""
    if request.path.endswith(".bin"):
        body = _PDF_BYTES
    else:
        body = _page("Unlabelled page", "<h1>Unlabelled page</h1><p>Served without a Content-Type.</p>").encode()
    resp = _NoContentTypeResponse(headers={"Content-Length": str(len(body))})
    await resp.prepare(request)
    await resp.write(body)
    await resp.write_eof()
    return resp


async def _big(request: web.Request) -> web.StreamResponse:
    """/big.html?size=BYTES&length=1: an HTML page of about size bytes (default 12 MB), streamed in chunks.

    With length=1 a Content-Length header announces the size up front; otherwise it is chunked.
    """
    size = int(request.query.get("size", str(12 * 1024 * 1024)))
    head, tail = b"<!DOCTYPE html><html><body><h1>Big page</h1>\n", b"</body></html>\n"
    filler = b"<p>Froobnicator filler paragraph to make this page very large.</p>\n"
    count = max(0, (size - len(head) - len(tail)) // len(filler) + 1)
    resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
    if request.query.get("length") == "1":
        resp.content_length = len(head) + count * len(filler) + len(tail)
    await resp.prepare(request)
    try:
        await resp.write(head)
        block = filler * 1000
        for _ in range(count // 1000):
            await resp.write(block)
        await resp.write(filler * (count % 1000) + tail)
        await resp.write_eof()
    except ConnectionError:  # the client gave up at its size limit: expected
        pass
    return resp


@functools.cache
def _bomb_body(megabytes: int) -> bytes:
    """Gzip of megabytes MB of repetitive HTML: tens of KB on the wire."""
    raw = b"<!DOCTYPE html><html><body>" + b"<p>0</p>" * (megabytes * 1024 * 1024 // 8) + b"</body></html>"
    return gzip.compress(raw, compresslevel=6)


async def _gzip_bomb(request: web.Request) -> web.Response:
    """/gzip-bomb?mb=50: Content-Encoding gzip, ~75 KB compressed that expands to ~50 MB of HTML."""
    body = _bomb_body(int(request.query.get("mb", "50")))
    headers = {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"}
    return web.Response(body=body, headers=headers)


async def _gzip_page(request: web.Request) -> web.Response:
    """/gzip.html: a normal page sent gzip-compressed, to show decompression works."""
    body = _page("Compressed page", "<h1>Compressed page</h1><p>Squeezed zorblax notes.</p>").encode()
    headers = {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"}
    return web.Response(body=gzip.compress(body), headers=headers)


async def _slow(request: web.Request) -> web.Response:
    """/slow?delay=S: waits S seconds (default 2) before answering at all."""
    await asyncio.sleep(float(request.query.get("delay", "2")))
    return _html(_page("Slow page", "<h1>Slow page</h1><p>Eventually arrived.</p>"))


async def _slow_body(request: web.Request) -> web.StreamResponse:
    """/slow-body?delay=S: sends headers and half a page at once, the rest after S seconds."""
    resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
    await resp.prepare(request)
    try:
        await resp.write(b"<!DOCTYPE html><html><body><h1>Slow body</h1>")
        await asyncio.sleep(float(request.query.get("delay", "2")))
        await resp.write(b"<p>Finally.</p></body></html>")
        await resp.write_eof()
    except ConnectionError:
        pass
    return resp


async def _echo_headers(request: web.Request) -> web.Response:
    """/echo-headers: an HTML page listing the request headers, one `<li>Name: value</li>` each."""
    items = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in request.headers.items())
    return _html(_page("Request headers", f"<h1>Request headers</h1><ul>{items}</ul>"))


def _etag_headers(page: dict) -> dict[str, str]:
    etag = '"' + hashlib.sha256(page["body"]).hexdigest()[:16] + '"'
    return {"ETag": etag, "Last-Modified": format_datetime(page["modified"], usegmt=True)}


async def _etag_get(request: web.Request) -> web.Response:
    """GET /etag.html: a page with ETag and Last-Modified; If-None-Match / If-Modified-Since give 304."""
    return _conditional(request, request.app[_ETAG_PAGE], "text/html; charset=utf-8")


def _conditional(request: web.Request, page: dict, content_type: str) -> web.Response:
    """The page {"body", "modified"} with ETag/Last-Modified, or 304 when the request's validators match."""
    headers = _etag_headers(page)
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        if headers["ETag"] in [tag.strip() for tag in inm.split(",")] or inm.strip() == "*":
            return web.Response(status=304, headers=headers)
    elif (ims := request.headers.get("If-Modified-Since")) is not None:
        try:
            if page["modified"] <= parsedate_to_datetime(ims):
                return web.Response(status=304, headers=headers)
        except (TypeError, ValueError):
            pass
    return web.Response(body=page["body"], headers={**headers, "Content-Type": content_type})


async def _etag_put(request: web.Request) -> web.Response:
    """PUT /etag.html: replaces the page body (changing its ETag and Last-Modified)."""
    page = request.app[_ETAG_PAGE]
    page["body"] = await request.read()
    # Last-Modified has one-second resolution; step it forward so If-Modified-Since sees the change.
    page["modified"] = max(datetime.now(UTC).replace(microsecond=0), page["modified"] + timedelta(seconds=1))
    return web.Response(status=204, headers=_etag_headers(page))


# --- /crawl/: a small documentation site for crawl tests (see tests/site_pages/crawl/) --------------------------

# Mutable crawl-site state: {"robots": "ok"|"404"|"500", "pages": {path: {"body": bytes | None, "modified": dt}}}.
# Tests that change it (PUT/DELETE pages, /_control/robots) on the shared session site must undo it
# (PUT /_control/reset); tests that need their own copy use serve_site(make_site_app()).
CRAWL_STATE = web.AppKey("crawl_state", dict)
CRAWL_DIR = PAGES_DIR / "crawl"
CRAWL_AGENT = "mcp-web-ingest"
_CRAWL_MODIFIED = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
_ROBOTS_TXT = """# robots.txt of the crawl test site
User-agent: *
Disallow: /crawl/
Crawl-delay: 5

User-agent: {agent}
Disallow: /crawl/private/
Allow: /crawl/private/public.html
Crawl-delay: 0.05

Sitemap: {origin}/sitemap_index.xml
"""
# Pages of the gzip sitemap with their lastmod; sitemap-only.html is linked from nowhere else.
_CRAWL_SITEMAP = (
    ("/crawl/index.html", "2024-03-01"),
    ("/crawl/install.html", "2024-02-10T08:30:00+00:00"),
    ("/crawl/usage.html", "2024-02-11"),
    ("/crawl/config.html", None),
    ("/crawl/faq.html", "2024-01-05"),
    ("/crawl/sitemap-only.html", "2024-04-01"),
)
_OTHER_SITEMAP = (("/crawl/api/client.html", "2024-01-20"), ("/guide/install.html", None))
_PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(64)


def _crawl_state() -> dict:
    return {"robots": "ok", "pages": {}}


def _origin(request: web.Request) -> str:
    return str(request.url.origin())


async def _robots(request: web.Request) -> web.Response:
    """/robots.txt: our agent may crawl /crawl/ except /crawl/private/ (bar public.html); '*' may not; 404/500 modes."""
    mode = request.app[CRAWL_STATE]["robots"]
    if mode != "ok":
        return web.Response(status=int(mode), text=f"robots.txt mode {mode}\n")
    return web.Response(text=_ROBOTS_TXT.format(agent=CRAWL_AGENT, origin=_origin(request)), content_type="text/plain")


async def _control_robots(request: web.Request) -> web.Response:
    """PUT /_control/robots?mode=ok|404|500: how /robots.txt answers from now on."""
    mode = request.query.get("mode", "ok")
    if mode not in ("ok", "404", "500"):
        return web.Response(status=400, text="mode must be ok, 404 or 500\n")
    request.app[CRAWL_STATE]["robots"] = mode
    return web.Response(status=204)


async def _control_reset(request: web.Request) -> web.Response:
    """PUT /_control/reset: robots.txt back to normal, every PUT/DELETE of /crawl/ pages undone."""
    request.app[CRAWL_STATE].update(_crawl_state())
    return web.Response(status=204)


def _urlset(origin: str, entries: tuple[tuple[str, str | None], ...]) -> bytes:
    items = "".join(
        f"<url><loc>{origin}{path}</loc>" + (f"<lastmod>{mod}</lastmod>" if mod else "") + "</url>\n"
        for path, mod in entries
    )
    xmlns = "http://www.sitemaps.org/schemas/sitemap/0.9"
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{xmlns}">\n{items}</urlset>\n'.encode()


async def _sitemap_index(request: web.Request) -> web.Response:
    """/sitemap_index.xml (and /sitemap.xml): a sitemap index of /sitemaps/crawl.xml.gz and /sitemaps/other.xml."""
    origin = _origin(request)
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>{origin}/sitemaps/crawl.xml.gz</loc><lastmod>2024-04-01</lastmod></sitemap>
<sitemap><loc>{origin}/sitemaps/other.xml</loc></sitemap>
</sitemapindex>
"""
    return web.Response(text=body, content_type="application/xml")


async def _sitemap_crawl_gz(request: web.Request) -> web.Response:
    """/sitemaps/crawl.xml.gz: a gzip file (application/gzip, no Content-Encoding) of the /crawl/ pages."""
    return web.Response(body=gzip.compress(_urlset(_origin(request), _CRAWL_SITEMAP)), content_type="application/gzip")


async def _sitemap_other(request: web.Request) -> web.Response:
    """/sitemaps/other.xml: a duplicate /crawl/ page and a page outside /crawl/."""
    return web.Response(body=_urlset(_origin(request), _OTHER_SITEMAP), content_type="application/xml")


async def _crawl_slow(request: web.Request) -> web.Response:
    """/crawl/slow.html: answers after 1.5 s."""
    await asyncio.sleep(1.5)
    return _html(_page("Slow page", "<h1>Slow page</h1><p>The sluggardine notes arrive late.</p>"))


async def _crawl_trap(request: web.Request) -> web.Response:
    """/crawl/trap/N: links to /crawl/trap/N+1, forever."""
    n = int(request.match_info["n"])
    return _html(_page(f"List page {n}", f'<h1>List page {n}</h1><p><a href="{n + 1}">Next page</a></p>'))


async def _crawl_calendar(request: web.Request) -> web.Response:
    """/crawl/calendar/YYYY/MM/: a month linking to the next and previous month, forever."""
    y, m = int(request.match_info["y"]), int(request.match_info["m"])
    nxt = (y + (m == 12), m % 12 + 1)
    prv = (y - (m == 1), (m - 2) % 12 + 1)
    links = " ".join(
        f'<a href="/crawl/calendar/{yy}/{mm:02d}/">{label}</a>'
        for label, (yy, mm) in (("Previous", prv), ("Next", nxt))
    )
    return _html(_page(f"Events {y}-{m:02d}", f"<h1>Events {y}-{m:02d}</h1><p>No events.</p><p>{links}</p>"))


async def _crawl_broken(request: web.Request) -> web.Response:
    """/crawl/broken.html: always HTTP 500."""
    return _html(_page("Error", "<h1>Internal Server Error</h1>"), status=500)


async def _crawl_logout(request: web.Request) -> web.Response:
    """/crawl/logout: a page a crawler must never request (count it with app[HITS])."""
    return _html(_page("Logged out", "<h1>You have been logged out</h1>"))


async def _crawl_asset(request: web.Request) -> web.Response:
    """/crawl/static/logo.png, /crawl/static/style.css: assets a crawler skips; /crawl/files/manual.pdf: a real PDF."""
    name = request.path.rsplit("/", 1)[1]
    if name == "manual.pdf":
        return web.Response(body=(PAGES_DIR / "formats" / "manual.pdf").read_bytes(), content_type="application/pdf")
    body, ctype = {"logo.png": (_PNG_BYTES, "image/png"), "style.css": (b"body{color:#333}\n", "text/css")}[name]
    return web.Response(body=body, content_type=ctype)


def _crawl_page(request: web.Request) -> tuple[str, dict | None]:
    """(relative path, page) of a /crawl/ request: PUT/DELETE overrides first, then the file; page None = absent."""
    rel = request.match_info.get("path", "") or "index.html"
    if rel.endswith("/"):
        rel += "index.html"
    pages = request.app[CRAWL_STATE]["pages"]
    if rel in pages:
        return rel, pages[rel] if pages[rel]["body"] is not None else None
    path = (CRAWL_DIR / rel).resolve()
    if not path.is_relative_to(CRAWL_DIR.resolve()) or not path.is_file():
        return rel, None
    return rel, {"body": path.read_bytes(), "modified": _CRAWL_MODIFIED}


async def _crawl_get(request: web.Request) -> web.Response:
    """GET /crawl/...: the page (or llms.txt) with ETag and Last-Modified; conditional requests get 304."""
    rel, page = _crawl_page(request)
    if page is None:
        return _html(_page("Not found", "<h1>Not found</h1>"), status=404)
    ctype = "text/plain; charset=utf-8" if rel.endswith(".txt") else "text/html; charset=utf-8"
    return _conditional(request, page, ctype)


async def _crawl_put(request: web.Request) -> web.Response:
    """PUT /crawl/X.html: replace (or create) the page body; its ETag and Last-Modified change."""
    rel, old = _crawl_page(request)
    modified = max(
        datetime.now(UTC).replace(microsecond=0),
        (old or {"modified": _CRAWL_MODIFIED})["modified"] + timedelta(seconds=1),
    )
    page = {"body": await request.read(), "modified": modified}
    request.app[CRAWL_STATE]["pages"][rel] = page
    return web.Response(status=204, headers=_etag_headers(page))


async def _crawl_delete(request: web.Request) -> web.Response:
    """DELETE /crawl/X.html: the page answers 404 from now on (until PUT again or /_control/reset)."""
    rel, _ = _crawl_page(request)
    request.app[CRAWL_STATE]["pages"][rel] = {"body": None, "modified": datetime.now(UTC)}
    return web.Response(status=204)


def make_site_app() -> web.Application:
    """The test website as an aiohttp Application (fresh state: counters, hits, the /etag.html page, /crawl/)."""
    app = web.Application(middlewares=[_count_hits])
    app[HITS] = Counter()
    app[_COUNTERS] = Counter()
    app[_ETAG_PAGE] = {"body": _ETAG_INITIAL, "modified": datetime(2024, 1, 15, 12, 0, tzinfo=UTC)}
    r = app.router
    r.add_get(r"/status/{code:\d{3}}", _status)
    r.add_get("/flaky", _flaky)
    r.add_get("/ratelimited", _ratelimited)
    r.add_get("/redirect", _redirect_install)
    r.add_get("/redirect-loop", _redirect_loop_a)
    r.add_get("/redirect-loop/b", _redirect_loop_b)
    r.add_get(r"/redirect-chain/{n:\d+}", _redirect_chain)
    r.add_get("/redirect-to", _redirect_to)
    r.add_get("/binary.bin", _binary)
    r.add_get("/doc.pdf", _pdf)
    r.add_get("/lying.html", _lying)
    r.add_get("/plain.txt", _plain)
    r.add_get("/no-content-type.html", _no_type)
    r.add_get("/no-content-type.bin", _no_type)
    r.add_get("/big.html", _big)
    r.add_get("/gzip-bomb", _gzip_bomb)
    r.add_get("/gzip.html", _gzip_page)
    r.add_get("/slow", _slow)
    r.add_get("/slow-body", _slow_body)
    r.add_get("/echo-headers", _echo_headers)
    r.add_get("/etag.html", _etag_get)
    r.add_put("/etag.html", _etag_put)
    app[CRAWL_STATE] = _crawl_state()
    r.add_get("/robots.txt", _robots)
    r.add_put("/_control/robots", _control_robots)
    r.add_put("/_control/reset", _control_reset)
    r.add_get("/sitemap_index.xml", _sitemap_index)
    r.add_get("/sitemap.xml", _sitemap_index)
    r.add_get("/sitemaps/crawl.xml.gz", _sitemap_crawl_gz)
    r.add_get("/sitemaps/other.xml", _sitemap_other)
    r.add_get("/crawl/slow.html", _crawl_slow)
    r.add_get(r"/crawl/trap/{n:\d+}", _crawl_trap)
    r.add_get(r"/crawl/calendar/{y:\d{4}}/{m:\d{2}}/", _crawl_calendar)
    r.add_get("/crawl/broken.html", _crawl_broken)
    r.add_get("/crawl/logout", _crawl_logout)
    for asset in ("/crawl/static/logo.png", "/crawl/static/style.css", "/crawl/files/manual.pdf"):
        r.add_get(asset, _crawl_asset)
    r.add_get("/crawl/", _crawl_get)
    r.add_get("/crawl/{path:.+}", _crawl_get)
    r.add_put("/crawl/{path:.+\\.html}", _crawl_put)
    r.add_delete("/crawl/{path:.+\\.html}", _crawl_delete)
    r.add_get("/js-rendered.html", _js_rendered)
    r.add_get("/bad/nested", _bad_nested)
    r.add_get("/bad/broken.html", _bad_broken)
    r.add_get("/bad/nav-only.html", _bad_nav_only)
    r.add_get("/bad/huge-code.html", _bad_huge_code)
    r.add_get("/bad/drip", _bad_drip)
    r.add_get("/bad/sjis.html", _bad_encoded)
    r.add_get("/bad/utf16.html", _bad_encoded)
    r.add_get("/bad/empty-body", _bad_empty_body)
    r.add_get("/bad/nul.html", _bad_nul)
    add_format_routes(r)
    r.add_get("/", _static)
    r.add_get("/{path:.+}", _static)
    return app


@asynccontextmanager
async def serve_site(app: web.Application | None = None) -> AsyncIterator[str]:
    """Serve the site (or the given app) on 127.0.0.1 at a free port; yields the base URL without a trailing slash."""
    # handler_cancellation stops /slow handlers when the client gives up, so shutdown does not wait for them.
    runner = web.AppRunner(app or make_site_app(), handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def _js_rendered(request: web.Request) -> web.Response:
    """/js-rendered.html: an empty body that only JavaScript fills (a heading and 'quasar flux')."""
    script = "<script>document.body.innerHTML = '<h1>Rendered by JS</h1><p>quasar flux</p>';</script>"
    return _html(_page("JS-rendered page", f"<noscript>This page needs JavaScript.</noscript>{script}"))


# --- /bad/: hostile and malformed pages for tests/test_bad_input.py ----------------------------------------------


async def _bad_nested(request: web.Request) -> web.Response:
    """/bad/nested?depth=N: a paragraph inside N nested <div>s (default 3000)."""
    depth = int(request.query.get("depth", "3000"))
    body = "<div>" * depth + "<p>Deep zorblax sediment at the bottom.</p>" + "</div>" * depth
    return _html(_page("Deeply nested", f"<h1>Deeply nested</h1>{body}"))


async def _bad_broken(request: web.Request) -> web.Response:
    """/bad/broken.html?title=open: unclosed and mis-nested tags, stray end tags, bad entities, an open comment."""
    body = (
        "<h1>Broken <b>markup</h1></b><p>First quibblefrost paragraph<p>second <i>one <b>mis</i>nested</b>"
        "</div></span><ul><li>one<li>two</ul><table><tr><td>cell<td>cell 2</table><p>tail &amp &lt;&gt; &#xZZ;"
        "<h2>Still a heading<p>quibblefrost notes under it <!-- a comment that never"
    )
    # ?title=open leaves <title> unclosed: browsers, too, then read the whole document as the title.
    head = "<title>Broken page" + ("" if request.query.get("title") == "open" else "</title>")
    return web.Response(text=f"<html><head>{head}<body>{body}", content_type="text/html", charset="utf-8")


async def _bad_nav_only(request: web.Request) -> web.Response:
    """/bad/nav-only.html: nothing but header, navigation and footer."""
    links = "".join(f'<li><a href="/p{i}.html">Section {i}</a></li>' for i in range(40))
    body = f"<header><a href='/'>Home</a></header><nav><ul>{links}</ul></nav><footer>© 2024 Example</footer>"
    return _html(_page("Navigation only", body))


async def _bad_huge_code(request: web.Request) -> web.Response:
    """/bad/huge-code.html?lines=N: a heading, a paragraph and one N-line (default 20000) Python code block."""
    lines = int(request.query.get("lines", "20000"))
    code = "\n".join(f"value_{i} = compute_gleeblorp({i})  # line {i}" for i in range(lines))
    body = f'<h1>Huge listing</h1><p>The gleeblorp generator.</p><pre><code class="language-python">{code}</code></pre>'
    return _html(_page("Huge listing", body))


async def _bad_drip(request: web.Request) -> web.StreamResponse:
    """/bad/drip?seconds=S: sends a few bytes every 0.1 s for S seconds (default 5): never idle, never done."""
    resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
    await resp.prepare(request)
    try:
        await resp.write(b"<!DOCTYPE html><html><body><h1>Drip</h1>")
        for _ in range(int(float(request.query.get("seconds", "5")) * 10)):
            await asyncio.sleep(0.1)
            await resp.write(b"<p>drip</p>")
        await resp.write_eof()
    except ConnectionError:
        pass
    return resp


async def _bad_encoded(request: web.Request) -> web.Response:
    """/bad/sjis.html (Shift_JIS, declared in <meta> only) and /bad/utf16.html (UTF-16 with a BOM, no label)."""
    text = "<h1>文字コード</h1><p>シフトジスで書かれた説明文です。</p>"
    if request.path.endswith("utf16.html"):
        page = _page("UTF-16 page", text).replace('<meta charset="utf-8">', "")
        return web.Response(body=page.encode("utf-16"), headers={"Content-Type": "text/html"})
    page = _page("Shift_JIS page", text).replace('<meta charset="utf-8">', '<meta charset="shift_jis">')
    return web.Response(body=page.encode("shift_jis"), headers={"Content-Type": "text/html"})


async def _bad_empty_body(request: web.Request) -> web.Response:
    """/bad/empty-body: 200, text/html, zero bytes."""
    return web.Response(body=b"", headers={"Content-Type": "text/html; charset=utf-8"})


async def _bad_nul(request: web.Request) -> web.Response:
    """/bad/nul.html: a text/html page with a NUL byte past the first kilobyte (where binary sniffing stops)."""
    filler = "<p>Zymurgic padding paragraph about fermentation vats.</p>" * 30
    body = f"<h1>NUL page</h1>{filler}<p>before\x00after the zymurgic NUL</p>"
    return web.Response(body=_page("NUL page", body).encode(), headers={"Content-Type": "text/html; charset=utf-8"})
