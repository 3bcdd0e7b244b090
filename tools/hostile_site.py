"""The hostile site of tools/bench_hostile.py, served on 127.0.0.1 from a thread of its own.

Pages with 100k nested <div>s, 50k nested lists, deep nested layout tables, a 10 MB page of ~500k links, a path built
to make backtracking regexes explode, script-link spellings, and ordinary pages linking to all of those.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence

from aiohttp import web

EVIL_PATH = "/" + "a" * 27 + "!"  # with Python's re, '(a+)+$' takes ~16 s on this, doubling per extra 'a'
FETCH_LIMIT = 10 * 2**20  # the server's default FETCH_MAX_BYTES: the big page stays under it, so it is parsed
NOT_FOUND = frozenset({"/robots.txt", "/sitemap.xml", "/llms.txt", "/favicon.ico"})
MARKER = "zorblax"  # a word on every page, so a lexical search finds each indexed page
_DATA = base64.b64encode(b"<script>alert(8)</script>").decode()
SCRIPT_HREFS = (
    "javascript:alert(1)",
    "JaVaScRiPt:alert(2)",
    "java&#x09;script:alert(3)",
    "java&#x0A;script:alert(4)",
    "&#x01;&#x1f; javascript:alert(5)",
    "   javascript:alert(6)",
    "vbscript:msgbox(7)",
    f"data:text/html;base64,{_DATA}",
    "&#106;avascript:alert(9)",
    "javascript&colon;alert(10)",
    "jav&#x61;script&#x3a;alert(11)",
)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def ordinary_page(title: str, links: Sequence[str]) -> str:
    """A small readable page linking to `links` (and to every script-link spelling, which must never be followed)."""
    anchors = "".join(f'<li><a href="{h}">{h[:40]}</a></li>' for h in links)
    scripts = "".join(f'<li><a href="{h}">script link</a></li>' for h in SCRIPT_HREFS)
    text = f"The {MARKER} manual explains how the widget frobnicates its gears. " * 8
    body = f"<main><h1>{title}</h1><p>{text}</p><ul>{anchors}</ul><ul>{scripts}</ul></main>"
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>"


def _wrap(title: str, body: str) -> str:
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>"


def hostile_pages(scale: float = 1.0) -> dict[str, str]:
    """The hostile pages by path; `scale` multiplies every size (1.0: 100k divs, 50k lists, ~500k links)."""

    def n(full: int) -> int:
        return max(1, int(full * scale))

    text = f"<p>{MARKER} deep text</p>"
    head = f"<main><h1>{MARKER} many links</h1><p>{MARKER} a page of links.</p><p>"
    # Empty anchors: with a word each, the page makes > MAX_CHUNKS_PER_PAGE chunks and is skipped before its links
    # reach the crawl; empty, it is indexed and its first MAX_LINKS links join the frontier.
    links = [f"<a href=z{_base36(i)}></a>\n" for i in range(n(500_000))]
    while len(head) + sum(map(len, links)) > FETCH_LIMIT - 1024:  # under FETCH_MAX_BYTES, so it gets parsed
        links.pop()
    return {
        "/deep-divs": _wrap("deep divs", "<div>" * n(100_000) + text + "</div>" * n(100_000)),
        "/deep-lists": _wrap("deep lists", "<main>" + "<ul><li>" * n(50_000) + text + "</li></ul>" * n(50_000)),
        "/deep-tables": _wrap("deep tables", "<table><tr><td>" * n(20_000) + text + "</td></tr></table>" * n(20_000)),
        "/many-links": _wrap("many links", head + "".join(links) + "</p></main>"),
        EVIL_PATH: ordinary_page("evil regex path", ["/"]),
        "/script-links": ordinary_page("script links", list(SCRIPT_HREFS) * n(1000)),
    }


def site_page(path: str, hostile: Mapping[str, str], ordinary: int) -> str | None:
    """What the site answers for a path: a hostile page, an ordinary page linking to all of them, or None (404)."""
    if path in hostile:
        return hostile[path]
    if path in NOT_FOUND:
        return None
    if path == "/":
        return ordinary_page("start", [*hostile, *(f"/page/{i}" for i in range(ordinary))])
    return ordinary_page(f"ordinary {path}", [*hostile, f"{path.rstrip('/')}/next"])


@contextlib.contextmanager
def serve_site(hostile: Mapping[str, str], ordinary: int) -> Iterator[tuple[str, collections.Counter[str]]]:
    """The site on 127.0.0.1 from its own thread and event loop: (base URL, requests counted by path)."""
    requests: collections.Counter[str] = collections.Counter()
    encoded = {p: t.encode() for p, t in hostile.items()}  # encoded once: the big page is 10 MB

    async def handler(request: web.Request) -> web.Response:
        requests[request.path] += 1
        if request.path in encoded:
            return web.Response(body=encoded[request.path], content_type="text/html")
        page = site_page(request.path, hostile, ordinary)
        return web.Response(text=page, content_type="text/html") if page else web.Response(status=404)

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        port.append(runner.addresses[0][1])
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="hostile-site", daemon=True)
    thread.start()
    ready.wait(30)
    try:
        yield f"http://127.0.0.1:{port[0]}", requests
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
