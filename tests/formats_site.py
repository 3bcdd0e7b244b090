"""Routes of the test website for documents that are not HTML: /formats/... (files in site_pages/formats/).

Each file is served with the Content-Type a real server would send it with, so detection by type, by extension
and by sniffing are all exercised; /formats/private/* need a cookie or HTTP Basic; /formats/bad/* are broken.
"""

from __future__ import annotations

import base64
from pathlib import Path

from aiohttp import web

FORMATS_DIR = Path(__file__).resolve().parent / "site_pages" / "formats"
SESSION_COOKIE = ("wiki_session", "s3cret-cookie-value")
BASIC = ("reader", "s3cret-basic-password")
# What servers commonly send: GitHub raw gives .rst and .ipynb as text/plain or JSON; extensions decide then.
_TYPES = {
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".rst": "text/plain; charset=utf-8",
    ".ipynb": "application/json",
    ".pdf": "application/pdf",
    ".html": "text/html; charset=utf-8",
}
PROBES: list[str | None] = []  # the Cookie header of each request for the probe image
_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")  # a 1×1 GIF
_PRIVATE_PAGE = """# {title}

## Quarterly grommet budget

The {title} lists the quarterly grommet budget: {secret_fact}.
"""


async def _file(request: web.Request) -> web.Response:
    rel = request.match_info["path"]
    path = (FORMATS_DIR / rel).resolve()
    if not path.is_relative_to(FORMATS_DIR.resolve()) or not path.is_file():
        return web.Response(status=404, text="not found")
    ctype = _TYPES.get(path.suffix, "application/octet-stream")
    return web.Response(body=path.read_bytes(), headers={"Content-Type": ctype})


async def _cookie_page(request: web.Request) -> web.Response:
    """/formats/private/cookie.md: Markdown for a request with the session cookie, 401 otherwise."""
    if request.cookies.get(SESSION_COOKIE[0]) != SESSION_COOKIE[1]:
        return web.Response(status=401, text="log in first")
    body = _PRIVATE_PAGE.format(title="Cookie wiki page", secret_fact="4,200 grommets for the cookie team")
    return web.Response(text=body, content_type="text/markdown")


async def _basic_page(request: web.Request) -> web.Response:
    """/formats/private/basic.md: Markdown for a request with the right HTTP Basic credentials, 401 otherwise."""
    expected = "Basic " + base64.b64encode(f"{BASIC[0]}:{BASIC[1]}".encode()).decode()
    if request.headers.get("Authorization") != expected:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="wiki"'}, text="who are you")
    body = _PRIVATE_PAGE.format(title="Basic wiki page", secret_fact="7,700 grommets for the basic team")
    return web.Response(text=body, content_type="text/markdown")


async def _cookie_html(request: web.Request) -> web.Response:
    """/formats/private/cookie.html: a script-rendered page for the session cookie that loads an image from
    another host (localhost), whose request must not carry the cookie (recorded in PROBES)."""
    if request.cookies.get(SESSION_COOKIE[0]) != SESSION_COOKIE[1]:
        return web.Response(status=401, text="log in first")
    port = request.url.port
    body = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Private wiki</title></head><body><main>
<h1>Private wiki</h1><div id="app">Loading...</div>
<img src="http://localhost:{port}/formats/private/probe.gif" alt="">
<script>document.getElementById("app").innerHTML =
  "<h2>Rendered grommets</h2><p>Rendered by script: 9,100 grommets for the browser team.</p>";</script>
</main></body></html>"""
    return web.Response(text=body, content_type="text/html")


async def _probe(request: web.Request) -> web.Response:
    """/formats/private/probe.gif: records the Cookie header it was requested with."""
    PROBES.append(request.headers.get("Cookie"))
    return web.Response(body=_GIF, content_type="image/gif")


async def _to_other_host(request: web.Request) -> web.Response:
    """/formats/private/elsewhere: a redirect to the same server under the name localhost (another host)."""
    port = request.url.port
    raise web.HTTPFound(f"http://localhost:{port}/echo-headers")


async def _long_line(request: web.Request) -> web.Response:
    """/formats/bad/long-line.txt: 1.5 MB of words on one line (generated data, not a document)."""
    return web.Response(text="flumph " * 220_000, content_type="text/plain")


def add_format_routes(router: web.UrlDispatcher) -> None:
    """Register the /formats/ routes (before the site's catch-all static route)."""
    router.add_get("/formats/private/cookie.md", _cookie_page)
    router.add_get("/formats/private/basic.md", _basic_page)
    router.add_get("/formats/private/elsewhere", _to_other_host)
    router.add_get("/formats/private/cookie.html", _cookie_html)
    router.add_get("/formats/private/probe.gif", _probe)
    router.add_get("/formats/bad/long-line.txt", _long_line)
    router.add_get("/formats/{path:.+}", _file)
