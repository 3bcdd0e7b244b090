"""robots.txt: RFC 9309 matching and group selection (pure), and the fetch status rules against real HTTP servers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_web_ingest.crawl.robots import MAX_ROBOTS_BYTES, RobotsRules, fetch_robots, parse_robots
from mcp_web_ingest.ingest.links import product_token

from .conftest import free_port
from .site import serve_site

UA = "mcp-web-ingest/0.1 (+https://github.com/mcp-web-ingest)"


def rules(*lines: str, agent: str = "*") -> RobotsRules:
    return parse_robots("\n".join([f"User-agent: {agent}", *lines]), UA)


@pytest.mark.parametrize(
    ("lines", "path", "allowed"),
    [
        # RFC 9309 §5.2 example: longest match wins.
        (["Allow: /example/page/", "Disallow: /example/page/disallowed.gif"], "/example/page/", True),
        (["Allow: /example/page/", "Disallow: /example/page/disallowed.gif"], "/example/page/disallowed.gif", False),
        (["Disallow: /", "Allow: /docs/"], "/docs/a.html", True),
        (["Disallow: /", "Allow: /docs/"], "/blog/", False),
        (["Allow: /", "Disallow: /docs/private"], "/docs/private/x", False),
        # Equal length: allow wins (RFC 9309 §2.2.2), whatever the order.
        (["Disallow: /page", "Allow: /page"], "/page", True),
        (["Allow: /page", "Disallow: /page"], "/page", True),
        (["Disallow: /a*", "Allow: /a$"], "/a", True),  # both 3 octets
        # '*' matches any sequence, including none.
        (["Disallow: /*.gif"], "/images/a.gif", False),
        (["Disallow: /*.gif"], "/a.gif?x=1", False),
        (["Disallow: /*.gif"], "/a.png", True),
        (["Disallow: /a*b*c"], "/a-b-c", False),
        (["Disallow: /a*b*c"], "/a-c-b", True),
        (["Disallow: /**x"], "/yyx", False),
        (["Disallow: *"], "/anything", False),
        (["Disallow: *private"], "/a/private", False),
        # '$' anchors at the end; elsewhere it is a literal.
        (["Disallow: /*.php$"], "/index.php", False),
        (["Disallow: /*.php$"], "/index.php?x=1", True),
        (["Disallow: /*.php$"], "/index.php5", True),
        (["Disallow: /$"], "/", False),
        (["Disallow: /$"], "/a", True),
        (["Disallow: /a$b"], "/a$b", False),
        (["Disallow: /x*$"], "/x/anything", False),
        # Prefix match and the query string.
        (["Disallow: /fish"], "/fish.html", False),
        (["Disallow: /fish"], "/Fish", True),  # paths are case-sensitive
        (["Disallow: /fish/"], "/fish", True),
        (["Disallow: /search?q="], "/search?q=x", False),
        (["Disallow: /search?q="], "/search", True),
        # Empty values add no rule: an empty Disallow allows everything.
        (["Disallow:"], "/anything", True),
        (["Disallow:", "Disallow: /x"], "/x", False),
        (["Allow:", "Disallow: /"], "/a", False),
        # Percent-encoding (RFC 9309 §2.2.2 table).
        (["Disallow: /foo/bar/ツ"], "/foo/bar/%E3%83%84", False),
        (["Disallow: /foo/bar/%E3%83%84"], "/foo/bar/ツ", False),
        (["Disallow: /foo/bar/%e3%83%84"], "/foo/bar/%E3%83%84", False),
        (["Disallow: /foo/bar/%62%61%7A"], "/foo/bar/baz", False),
        (["Disallow: /foo/bar/baz"], "/foo/bar/%62%61%7A", False),
        (["Disallow: /a%2Fb"], "/a/b", True),  # an encoded '/' is reserved: it stays distinct
        # Leniency: a value without a leading '/' is read as if it had one; comments are ignored.
        (["Disallow: private/"], "/private/x", False),
        (["Disallow: /x # not here", "Allow: /x/y"], "/x/z", False),
        (["disallow : /lower"], "/lower", False),
        # /robots.txt itself is always allowed.
        (["Disallow: /"], "/robots.txt", True),
        # Absolute URLs are reduced to path and query; fragments are not part of it.
        (["Disallow: /p?a=1"], "https://example.com/p?a=1#frag", False),
        (["Disallow: /"], "HTTPS://EXAMPLE.COM/", False),
    ],
)
def test_rule_matching(lines: list[str], path: str, allowed: bool) -> None:
    assert rules(*lines).allowed(path) is allowed


@pytest.mark.parametrize(
    ("text", "agent", "path", "allowed"),
    [
        # Our group beats '*'; matched by product token, case-insensitively, ignoring a version.
        ("User-agent: *\nDisallow: /\n\nUser-agent: mcp-web-ingest\nDisallow: /x", UA, "/a", True),
        ("User-agent: *\nDisallow: /\n\nUser-agent: MCP-Web-Ingest\nDisallow: /x", UA, "/x", False),
        ("User-agent: *\nDisallow: /\n\nUser-agent: mcp-web-ingest/2.0\nAllow: /", UA, "/a", True),
        # Another agent's group does not apply; '*' is the fallback.
        ("User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nDisallow: /x", UA, "/a", True),
        ("User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nDisallow: /x", UA, "/x", False),
        ("User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nDisallow: /x", "otherbot", "/a", False),
        # A longer product token is another agent, not a prefix match.
        ("User-agent: mcp-web-ingest-extra\nDisallow: /\n", UA, "/a", True),
        # No group for us and no '*' group: everything allowed.
        ("User-agent: otherbot\nDisallow: /\n", UA, "/a", True),
        # Consecutive user-agent lines share one group.
        ("User-agent: a\nUser-agent: mcp-web-ingest\nDisallow: /shared\n", UA, "/shared", False),
        # Groups for the same agent are merged (RFC 9309 §2.2.1).
        (
            "User-agent: mcp-web-ingest\nDisallow: /a\n\nUser-agent: *\nDisallow: /\n\nUser-agent: mcp-web-ingest\n"
            "Disallow: /b\n",
            UA,
            "/b",
            False,
        ),
        (
            "User-agent: mcp-web-ingest\nDisallow: /a\n\nUser-agent: *\nDisallow: /\n\nUser-agent: mcp-web-ingest\n"
            "Disallow: /b\n",
            UA,
            "/c",
            True,
        ),
        # A user-agent line after rules starts a new group even without a blank line.
        ("User-agent: mcp-web-ingest\nDisallow: /a\nUser-agent: other\nDisallow: /b\n", UA, "/b", True),
        # Rules before any user-agent line belong to nobody; blank lines inside a group do not end it.
        ("Disallow: /\nUser-agent: *\nDisallow: /x\n", UA, "/a", True),
        ("User-agent: *\n\nDisallow: /x\n", UA, "/x", False),
        # A Sitemap line does not end a group.
        ("User-agent: *\nSitemap: https://h/s.xml\nDisallow: /x\n", UA, "/x", False),
        # Windows line ends, BOM-less garbage lines and unknown fields are ignored.
        ("User-agent: *\r\nDisallow: /x\r\nNoindex: /y\r\ngarbage\r\n", UA, "/x", False),
        ("User-agent: *\r\nDisallow: /x\r\nNoindex: /y\r\ngarbage\r\n", UA, "/y", True),
    ],
)
def test_group_selection(text: str, agent: str, path: str, allowed: bool) -> None:
    assert parse_robots(text, agent).allowed(path) is allowed


@pytest.mark.parametrize(
    ("text", "delay"),
    [
        ("User-agent: mcp-web-ingest\nCrawl-delay: 0.5\n\nUser-agent: *\nCrawl-delay: 10", 0.5),
        ("User-agent: *\nCrawl-delay: 3", 3.0),
        ("User-agent: other\nCrawl-delay: 3", None),
        ("User-agent: *\nCrawl-delay: soon", None),
        ("User-agent: *\nCrawl-delay: -1", None),
        ("User-agent: *\nCrawl-delay: inf", None),
        ("Crawl-delay: 2\nUser-agent: *", None),
    ],
)
def test_crawl_delay(text: str, delay: float | None) -> None:
    assert parse_robots(text, UA).crawl_delay == delay


def test_sitemaps_are_global_and_deduplicated() -> None:
    text = (
        "Sitemap: https://h/a.xml\nUser-agent: other\nDisallow: /\nsitemap: https://h/b.xml\nSitemap: https://h/a.xml"
    )
    assert parse_robots(text, UA).sitemaps == ("https://h/a.xml", "https://h/b.xml")


@pytest.mark.parametrize(
    ("agent", "token"),
    [(UA, "mcp-web-ingest"), ("Googlebot/2.1", "googlebot"), ("  Foo_Bar baz", "foo_bar"), ("/1.0", ""), ("", "")],
)
def test_product_token(agent: str, token: str) -> None:
    assert product_token(agent) == token


def test_allow_all_and_disallow_all() -> None:
    assert RobotsRules.allow_all().allowed("/anything")
    deny = RobotsRules.disallow_all("HTTP 503")
    assert not deny.allowed("/") and not deny.allowed("http://h/x?y")
    assert deny.allowed("/robots.txt") and deny.reason == "HTTP 503"


def _reference(pattern: str, path: str) -> bool:
    """The matching rule restated as a regular expression, to cross-check the linear-time matcher."""
    anchored = pattern.endswith("$")
    body = pattern[:-1] if anchored else pattern
    regex = ".*".join(re.escape(p) for p in body.split("*")) + (r"\Z" if anchored else "")
    return re.match(regex, path, re.DOTALL) is not None


@settings(max_examples=300, deadline=None)
@given(pattern=st.text(alphabet="/ab*$", min_size=1, max_size=8), path=st.text(alphabet="/ab$", max_size=10))
def test_matcher_agrees_with_regex(pattern: str, path: str) -> None:
    pattern, path = "/" + pattern, "/" + path
    r = parse_robots(f"User-agent: *\nDisallow: {pattern}", UA)
    assert r.allowed(path) is (not _reference(pattern, path) or path == "/robots.txt")


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400), path=st.text(max_size=60))
def test_parse_and_match_never_crash(text: str, path: str) -> None:
    r = parse_robots(text, UA)
    assert isinstance(r.allowed(path), bool)
    assert isinstance(r.allowed("http://h/" + path), bool)


# --- fetching -----------------------------------------------------------------------------------------------


async def test_fetch_site_robots_for_our_agent(site_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        r = await fetch_robots(session, site_url, UA, timeout_s=5)
    assert r.crawl_delay == 0.05
    assert r.sitemaps == (f"{site_url}/sitemap_index.xml",)
    assert r.allowed(f"{site_url}/crawl/index.html")
    assert not r.allowed(f"{site_url}/crawl/private/secret.html")
    assert r.allowed(f"{site_url}/crawl/private/public.html")  # a longer Allow beats the Disallow
    assert "HTTP 200" in r.reason and "mcp-web-ingest" in r.reason


async def test_fetch_site_robots_for_another_agent(site_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        r = await fetch_robots(session, site_url + "/", "SomeOtherBot/1.0", timeout_s=5)
    assert r.crawl_delay == 5 and not r.allowed("/crawl/index.html") and r.allowed("/guide/install.html")


@pytest.mark.parametrize(("mode", "allowed", "words"), [("404", True, "HTTP 404"), ("500", False, "HTTP 500")])
async def test_fetch_status_rules_via_control(site_url: str, mode: str, allowed: bool, words: str) -> None:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.put(f"{site_url}/_control/robots?mode={mode}") as resp:
                assert resp.status == 204
            r = await fetch_robots(session, site_url, UA, timeout_s=5)
        finally:
            async with session.put(f"{site_url}/_control/reset") as resp:
                assert resp.status == 204
    assert r.allowed("/crawl/private/secret.html") is allowed
    assert r.allowed("/crawl/index.html") is allowed
    assert words in r.reason


def _robots_app(handler) -> web.Application:  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_get("/robots.txt", handler)
    app.router.add_get("/hop/{n:\\d+}", handler)
    return app


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.query.get("s", "200")), text="User-agent: *\nDisallow: /\n")


@pytest.mark.parametrize(
    ("status", "allowed"),
    [(200, False), (204, True), (401, True), (403, True), (410, True), (429, False), (502, False), (503, False)],
)
async def test_fetch_status_table(status: int, allowed: bool) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = "User-agent: *\nDisallow: /\n" if status == 200 else ""
        return web.Response(status=status, text=body if status != 204 else None)

    async with serve_site(_robots_app(handler)) as base, aiohttp.ClientSession() as session:
        r = await fetch_robots(session, base, UA, timeout_s=5)
    assert r.allowed("/page") is allowed, r.reason


@pytest.mark.parametrize(("hops", "allowed"), [(5, False), (6, True)])
async def test_fetch_follows_five_redirects(hops: int, allowed: bool) -> None:
    """Up to five redirects reach the file (which disallows all); more mean "unavailable" (allow all)."""

    async def handler(request: web.Request) -> web.Response:
        n = int(request.match_info.get("n", hops))
        if n > 0:
            raise web.HTTPFound(f"/hop/{n - 1}")
        return web.Response(text="User-agent: *\nDisallow: /\n")

    async with serve_site(_robots_app(handler)) as base, aiohttp.ClientSession() as session:
        r = await fetch_robots(session, base, UA, timeout_s=5)
    assert r.allowed("/page") is allowed, r.reason


async def test_fetch_unreachable_disallows_all() -> None:
    async with aiohttp.ClientSession() as session:
        r = await fetch_robots(session, f"http://127.0.0.1:{free_port()}", UA, timeout_s=5)
    assert not r.allowed("/page") and "unreachable" in r.reason


async def test_fetch_timeout_disallows_all() -> None:
    async def handler(request: web.Request) -> web.Response:
        import asyncio

        await asyncio.sleep(5)
        return web.Response(text="")

    async with serve_site(_robots_app(handler)) as base, aiohttp.ClientSession() as session:
        r = await fetch_robots(session, base, UA, timeout_s=0.3)
    assert not r.allowed("/page") and "unreachable" in r.reason


async def test_fetch_caps_size_at_complete_lines() -> None:
    """Rules within the first 500 KiB apply; a rule past the cap is never seen (nor a half-cut one)."""
    filler = "# " + "x" * 98 + "\n"
    text = "User-agent: *\nDisallow: /early\n" + filler * (MAX_ROBOTS_BYTES // len(filler) + 10) + "Disallow: /late\n"

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=text)

    async with serve_site(_robots_app(handler)) as base, aiohttp.ClientSession() as session:
        r = await fetch_robots(session, base, UA, timeout_s=5)
    assert not r.allowed("/early") and r.allowed("/late")


@pytest.fixture
async def bom_server() -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body="\ufeffUser-agent: *\nDisallow: /ü\n".encode())

    async with serve_site(_robots_app(handler)) as base:
        yield base


async def test_fetch_strips_bom_and_reads_utf8(bom_server: str) -> None:
    async with aiohttp.ClientSession() as session:
        r = await fetch_robots(session, bom_server, UA, timeout_s=5)
    assert not r.allowed("/ü") and not r.allowed("/%C3%BC") and r.allowed("/u")
