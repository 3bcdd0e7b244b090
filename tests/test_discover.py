"""Discovery: links and canonical URLs in HTML, sitemaps (pure and over HTTP), llms.txt."""

from __future__ import annotations

import gzip
import time

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_web_ingest.crawl.robots import RobotsRules, fetch_robots
from mcp_web_ingest.crawl.seeds import discover_sitemap_urls, fetch_llms_txt, parse_llms_txt, parse_sitemap
from mcp_web_ingest.ingest.links import analyze_page, canonical_url, extract_links

from .site import serve_site

BASE = "http://h.test/docs/page.html"
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


@pytest.mark.parametrize(
    ("body", "links"),
    [
        ('<a href="a.html">', ["http://h.test/docs/a.html"]),
        ('<a href="/x">', ["http://h.test/x"]),
        ('<a href="../up.html">', ["http://h.test/up.html"]),
        ('<a href="//other.test/p">', ["http://other.test/p"]),
        ('<a href="HTTPS://H.TEST:443/Case">', ["https://h.test/Case"]),
        # Fragments dropped and query parameters sorted, so spellings of one page collapse into one.
        ('<a href="a.html#x"><a href="a.html#y"><a href="a.html">', ["http://h.test/docs/a.html"]),
        ('<a href="s?b=2&amp;a=1"><a href="s?a=1&b=2">', ["http://h.test/docs/s?a=1&b=2"]),
        # Order of first appearance is kept.
        ('<a href="b"><a href="a"><a href="b">', ["http://h.test/docs/b", "http://h.test/docs/a"]),
        # Not pages: other schemes, same-page fragments, empty hrefs, anchors without href.
        ('<a href="mailto:a@b.c"><a href="javascript:void(0)"><a href="tel:1"><a href="data:text/html,x">', []),
        ('<a href="#top"><a href=""><a name="x">x</a><a href="   ">', []),
        ('<a href="ftp://h.test/file">', []),
        ('<a href="http://[::1">', []),  # malformed IPv6 literal
        # Whitespace the URL standard strips, and <area> links.
        ('<a href="  a.html\n ">', ["http://h.test/docs/a.html"]),
        ('<a href="a\t.ht\nml">', ["http://h.test/docs/a.html"]),
        ('<map><area href="area.html"></map>', ["http://h.test/docs/area.html"]),
        # rel=nofollow is skipped (decision: owners mark links they do not vouch for: logins, edits, comments).
        (
            '<a rel="nofollow" href="n.html"><a rel="external NoFollow" href="m.html"><a rel="next" href="k.html">',
            ["http://h.test/docs/k.html"],
        ),
    ],
)
def test_extract_links(body: str, links: list[str]) -> None:
    assert extract_links(f"<html><body>{body}</body></html>", BASE) == links


@pytest.mark.parametrize(
    ("head", "links"),
    [
        ('<base href="/other/">', ["http://h.test/other/a.html"]),
        ('<base href="https://cdn.test/root/">', ["https://cdn.test/root/a.html"]),
        ('<base href="sub/">', ["http://h.test/docs/sub/a.html"]),  # a relative base resolves against the page
        ('<base target="_blank">', ["http://h.test/docs/a.html"]),
        ('<base href="javascript:x">', ["http://h.test/docs/a.html"]),  # an unusable base is ignored
    ],
)
def test_base_href(head: str, links: list[str]) -> None:
    assert extract_links(f'<html><head>{head}</head><body><a href="a.html">a</a></body></html>', BASE) == links


@pytest.mark.parametrize(
    ("meta", "links", "noindex"),
    [
        ('<meta name="robots" content="nofollow">', 0, False),
        ('<meta name="ROBOTS" content="noindex, nofollow">', 0, True),
        ('<meta name="robots" content="none">', 0, True),
        ('<meta name="robots" content="noindex">', 1, True),
        ('<meta name="mcp-web-ingest" content="nofollow">', 0, False),
        ('<meta name="otherbot" content="noindex,nofollow">', 1, False),
        ("", 1, False),
    ],
)
def test_meta_robots(meta: str, links: int, noindex: bool) -> None:
    page = analyze_page(f'<html><head>{meta}</head><body><a href="a">a</a></body></html>', BASE)
    assert len(page.links) == links and page.noindex is noindex


def test_follow_nofollow_option() -> None:
    assert analyze_page('<a rel="nofollow" href="n">', BASE, follow_nofollow=True).links == ("http://h.test/docs/n",)


@pytest.mark.parametrize(
    ("head", "canonical"),
    [
        ('<link rel="canonical" href="/docs/main.html">', "http://h.test/docs/main.html"),
        ('<link rel="Canonical" href="https://h.test/docs/main.html#frag">', "https://h.test/docs/main.html"),
        ('<link rel="alternate canonical" href="main.html?b=1&amp;a=2">', "http://h.test/docs/main.html?a=2&b=1"),
        ('<base href="/x/"><link rel="canonical" href="main.html">', "http://h.test/x/main.html"),
        ('<link rel="alternate" href="/fr/">', None),
        ('<link rel="canonical">', None),
        ('<link rel="canonical" href="ftp://h.test/x">', None),
        ("", None),
    ],
)
def test_canonical_url(head: str, canonical: str | None) -> None:
    assert canonical_url(f"<html><head>{head}</head><body></body></html>", BASE) == canonical


@settings(max_examples=200, deadline=None)
@given(html=st.text(max_size=300))
def test_link_extraction_never_crashes(html: str) -> None:
    page = analyze_page(html, BASE)
    assert all(u.startswith(("http://", "https://")) for u in page.links)


# --- sitemaps -------------------------------------------------------------------------------------------------


def _urlset(*entries: str, ns: str = NS) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {ns}>{"".join(entries)}</urlset>'.encode()


@pytest.mark.parametrize(
    ("data", "urls"),
    [
        (
            _urlset("<url><loc>https://h.test/a</loc><lastmod>2024-01-02</lastmod></url>"),
            [("https://h.test/a", "2024-01-02")],
        ),
        (_urlset("<url><loc> https://h.test/b \n</loc></url>"), [("https://h.test/b", None)]),
        (
            _urlset("<url><lastmod>2024-01-02</lastmod><loc>https://h.test/c</loc></url>"),
            [("https://h.test/c", "2024-01-02")],
        ),
        # No namespace, a prefixed namespace, an old namespace: all read.
        (_urlset("<url><loc>https://h.test/d</loc></url>", ns=""), [("https://h.test/d", None)]),
        (
            b'<s:urlset xmlns:s="http://www.sitemaps.org/schemas/sitemap/0.9"><s:url><s:loc>https://h.test/e</s:loc>'
            b"</s:url></s:urlset>",
            [("https://h.test/e", None)],
        ),
        (
            _urlset("<url><loc>https://h.test/f</loc></url>", ns='xmlns="http://www.google.com/schemas/sitemap/0.84"'),
            [("https://h.test/f", None)],
        ),
        # Image/video extensions have their own <loc>: not pages.
        (
            _urlset(
                '<url xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"><loc>https://h.test/g</loc>'
                "<image:image><image:loc>https://h.test/g.png</image:loc></image:image></url>"
            ),
            [("https://h.test/g", None)],
        ),
        # Entities, CDATA, normalisation and duplicates.
        (
            _urlset(
                "<url><loc>https://h.test/p?b=2&amp;a=1</loc></url><url><loc><![CDATA[https://h.test/p?a=1&b=2]]></loc></url>"
            ),
            [("https://h.test/p?a=1&b=2", None)],
        ),
        # Relative or non-http locs are invalid.
        (_urlset("<url><loc>/relative</loc></url><url><loc>ftp://h.test/x</loc></url><url><loc></loc></url>"), []),
        # UTF-8 BOM and a UTF-16 document.
        (b"\xef\xbb\xbf" + _urlset("<url><loc>https://h.test/bom</loc></url>"), [("https://h.test/bom", None)]),
        (
            '<?xml version="1.0" encoding="UTF-16"?><urlset><url><loc>https://h.test/u16</loc></url></urlset>'.encode(
                "utf-16"
            ),
            [("https://h.test/u16", None)],
        ),
    ],
)
def test_parse_urlset(data: bytes, urls: list[tuple[str, str | None]]) -> None:
    doc = parse_sitemap(data)
    assert list(doc.urls) == urls and doc.sitemaps == () and doc.error is None


def test_parse_sitemap_index_and_gzip() -> None:
    index = (
        f"<sitemapindex {NS}><sitemap><loc>https://h.test/s1.xml.gz</loc><lastmod>2024-01-01</lastmod></sitemap>"
        "<sitemap><loc>https://h.test/s2.xml</loc></sitemap></sitemapindex>"
    ).encode()
    for data in (index, gzip.compress(index)):
        doc = parse_sitemap(data)
        assert doc.sitemaps == ("https://h.test/s1.xml.gz", "https://h.test/s2.xml") and doc.urls == ()


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        (
            b"https://h.test/a\nhttps://h.test/b\r\n\nnot a url\n  http://h.test/c  \n",
            ["https://h.test/a", "https://h.test/b", "http://h.test/c"],
        ),
        (b"https://h.test/a\nhttps://h.test/a#x\n", ["https://h.test/a"]),
        (gzip.compress(b"https://h.test/z\n"), ["https://h.test/z"]),
        (b"", []),
        (b"\xff\xfe garbage \x00", []),
    ],
)
def test_parse_text_sitemap(text: bytes, urls: list[str]) -> None:
    assert [u for u, _ in parse_sitemap(text).urls] == urls


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"<urlset><url><loc>https://h.test/a</loc></url><url><loc>https://h.test/b", "malformed XML"),
        (b"<html><body>Not found</body></html>", None),
        (b"<urlset><url><loc>https://h.test/a</loc></url></wrong>", "malformed XML"),
        (b"<<<>>>", "malformed XML"),
        (b"\x1f\x8b\x08\x00garbage", "gzip data"),
        (gzip.compress(b"https://h.test/a\n" * 100)[:40], "truncated gzip data"),
        (b"<urlset><url><loc>&undefined;</loc></url></urlset>", "malformed XML"),
    ],
)
def test_malformed_sitemaps_do_not_raise(data: bytes, words: str | None) -> None:
    doc = parse_sitemap(data)
    assert doc.sitemaps == ()
    assert (doc.error is None) if words is None else (words in (doc.error or ""))


def test_truncated_sitemap_keeps_what_came_before() -> None:
    doc = parse_sitemap(b"<urlset><url><loc>https://h.test/a</loc></url><url><loc>https://h.te")
    assert doc.urls == (("https://h.test/a", None),) and "malformed" in (doc.error or "")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<urlset><url><loc>https://h.test/&lol9;</loc></url></urlset>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<urlset><url><loc>https://h.test/&xxe;</loc></url></urlset>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE urlset SYSTEM "http://127.0.0.1:9/evil.dtd">
<urlset><url><loc>https://h.test/a</loc></url></urlset>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE, EXTERNAL_DTD, gzip.compress(BILLION_LAUGHS)])
def test_dtds_are_refused(data: bytes) -> None:
    started = time.monotonic()
    doc = parse_sitemap(data)
    assert time.monotonic() - started < 1
    assert doc.urls == () and "DTD or entity declarations are not allowed" in (doc.error or "")


def test_gzip_bomb_is_cut_at_the_size_cap() -> None:
    data = gzip.compress(b"<urlset>" + b" " * (8 * 1024 * 1024) + b"<url><loc>https://h.test/late</loc></url></urlset>")
    doc = parse_sitemap(data, max_bytes=1024 * 1024)
    assert doc.urls == () and "larger than 1048576 bytes" in (doc.error or "")


def test_url_limit() -> None:
    entries = "".join(f"<url><loc>https://h.test/{i}</loc></url>" for i in range(20))
    doc = parse_sitemap(_urlset(entries), max_urls=5)
    assert len(doc.urls) == 5 and "more than 5 URLs" in (doc.error or "")
    text = "\n".join(f"https://h.test/{i}" for i in range(20)).encode()
    assert len(parse_sitemap(text, max_urls=5).urls) == 5


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: f"<urlset><url><loc>{t}</loc></url>".encode())
)
def test_parse_sitemap_never_crashes(data: bytes) -> None:
    doc = parse_sitemap(data)
    assert all(u.startswith(("http://", "https://")) for u, _ in doc.urls)


# --- sitemaps over HTTP ---------------------------------------------------------------------------------------


async def test_discover_site_sitemaps(site_url: str) -> None:
    """robots.txt → sitemap index → a gzip file (application/gzip) and a plain one, deduplicated, with lastmod."""
    async with aiohttp.ClientSession() as session:
        robots = await fetch_robots(session, site_url, "mcp-web-ingest", timeout_s=5)
        problems: list[str] = []
        found = dict(await discover_sitemap_urls(session, site_url + "/crawl/index.html", robots, problems=problems))
    assert problems == []
    assert found[f"{site_url}/crawl/sitemap-only.html"] == "2024-04-01"
    assert found[f"{site_url}/crawl/install.html"] == "2024-02-10T08:30:00+00:00"
    assert found[f"{site_url}/crawl/config.html"] is None
    assert found[f"{site_url}/crawl/api/client.html"] == "2024-01-20"
    assert f"{site_url}/guide/install.html" in found  # scope filtering is the crawler's job
    assert len(found) == 8


async def test_discover_falls_back_to_sitemap_xml(site_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        found = await discover_sitemap_urls(session, site_url + "/crawl/", RobotsRules.allow_all())
    assert f"{site_url}/crawl/sitemap-only.html" in dict(found)


async def test_discover_limits_and_problems(site_url: str) -> None:
    robots = RobotsRules(sitemaps=(f"{site_url}/sitemap_index.xml", f"{site_url}/missing.xml"))
    async with aiohttp.ClientSession() as session:
        problems: list[str] = []
        found = await discover_sitemap_urls(session, site_url, robots, max_sitemaps=2, problems=problems)
        assert found == []  # the index and the 404: no page URLs read
        assert f"sitemap {site_url}/missing.xml: HTTP 404" in problems
        assert "more than 2 sitemaps: the rest ignored" in problems
        problems = []
        found = await discover_sitemap_urls(session, site_url, robots, max_depth=0, problems=problems)
        assert found == [] and any("nested deeper than 0 levels" in p for p in problems)
        found = await discover_sitemap_urls(session, site_url, robots, max_urls=3)
        assert len(found) == 3


async def test_discover_respects_robots_and_survives_errors(site_url: str) -> None:
    denied = RobotsRules.disallow_all()
    async with aiohttp.ClientSession() as session:
        problems: list[str] = []
        assert await discover_sitemap_urls(session, site_url, denied, problems=problems) == []
        assert problems == [f"sitemap {site_url}/sitemap.xml: disallowed by robots.txt"]
        unreachable = RobotsRules(sitemaps=("http://127.0.0.1:9/sitemap.xml", "not a url"))
        problems = []
        assert await discover_sitemap_urls(session, site_url, unreachable, problems=problems) == []
        assert len(problems) == 2 and problems[0].startswith("sitemap http://127.0.0.1:9/sitemap.xml:")
        assert problems[1] == "sitemap 'not a url': not an absolute http(s) URL"


async def test_discover_guards_against_sitemap_loops() -> None:
    async def index(request: web.Request) -> web.Response:
        origin = str(request.url.origin())
        body = f"<sitemapindex><sitemap><loc>{origin}/sitemap.xml</loc></sitemap></sitemapindex>"
        return web.Response(text=body, content_type="application/xml")

    app = web.Application()
    app.router.add_get("/sitemap.xml", index)
    async with serve_site(app) as base, aiohttp.ClientSession() as session:
        assert await discover_sitemap_urls(session, base, RobotsRules.allow_all()) == []


# --- llms.txt ---------------------------------------------------------------------------------------------------

LLMS = """# Project

> Summary with a [link in the quote](https://h.test/quote).

## Docs

- [Install](install.md): how to install
- [API](/api/ "API reference")
- [Spaced]( https://h.test/spaced )
- [Dup](install.md#section)
- Bare autolink: <https://h.test/auto>
- ![Logo](logo.png)
- [Mail](mailto:x@h.test)

## Optional

- [Extra](https://other.test/extra?b=2&a=1)
"""


def test_parse_llms_txt() -> None:
    assert parse_llms_txt(LLMS, "https://h.test/docs/llms.txt") == [
        "https://h.test/quote",
        "https://h.test/docs/install.md",
        "https://h.test/api/",
        "https://h.test/spaced",
        "https://h.test/auto",
        "https://other.test/extra?a=1&b=2",
    ]


@pytest.mark.parametrize("text", ["", "# Title only\n", "[broken](", "no links at all"])
def test_parse_llms_txt_without_links(text: str) -> None:
    assert parse_llms_txt(text, "https://h.test/llms.txt") == []


async def test_fetch_llms_txt_from_site(site_url: str) -> None:
    """/llms.txt is 404 on the test site; /crawl/llms.txt (the start URL's prefix) lists four pages."""
    async with aiohttp.ClientSession() as session:
        urls = await fetch_llms_txt(session, site_url + "/crawl/index.html")
    assert urls == [
        f"{site_url}/crawl/install.html",
        f"{site_url}/crawl/api/client.html",
        f"{site_url}/crawl/llms-only.html",
        f"{site_url}/crawl/changelog.html",
    ]


async def test_fetch_llms_txt_missing_or_disallowed(site_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        assert await fetch_llms_txt(session, site_url + "/guide/install.html") == []
        assert await fetch_llms_txt(session, site_url + "/crawl/", robots=RobotsRules.disallow_all()) == []
        assert await fetch_llms_txt(session, "http://127.0.0.1:9/docs/") == []


async def test_fetch_llms_txt_ignores_html_soft_404() -> None:
    async def soft_404(request: web.Request) -> web.Response:
        return web.Response(text='<html><a href="/x">[x](/y)</a></html>', content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", soft_404)
    async with serve_site(app) as base, aiohttp.ClientSession() as session:
        assert await fetch_llms_txt(session, base + "/docs/") == []


# --- the /crawl/ test site itself ---------------------------------------------------------------------------------


async def test_crawl_site_pages_validators_and_edits(site_url: str) -> None:
    """Pages answer 304 to their validators; PUT changes a page, DELETE makes it 404, /_control/reset undoes both."""
    url = f"{site_url}/crawl/usage.html"
    async with aiohttp.ClientSession() as s:
        try:
            async with s.get(url) as r:
                etag, modified, body = r.headers["ETag"], r.headers["Last-Modified"], await r.text()
            assert "quibbleflux" in body
            async with s.get(url, headers={"If-None-Match": etag}) as r:
                assert r.status == 304
            async with s.get(url, headers={"If-Modified-Since": modified}) as r:
                assert r.status == 304
            async with s.put(url, data=b"<html><body><p>Rewritten usage.</p></body></html>") as r:
                assert r.status == 204 and r.headers["ETag"] != etag
            async with s.get(url, headers={"If-None-Match": etag}) as r:
                assert r.status == 200 and "Rewritten" in await r.text()
            async with s.delete(url) as r:
                assert r.status == 204
            async with s.get(url) as r:
                assert r.status == 404
        finally:
            async with s.put(f"{site_url}/_control/reset") as r:
                assert r.status == 204
        async with s.get(url) as r:
            assert r.status == 200 and r.headers["ETag"] == etag


async def test_crawl_site_special_pages(site_url: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{site_url}/crawl/install.html") as a, s.get(f"{site_url}/crawl/install-copy.html") as b:
            assert await a.read() == await b.read()
        async with s.get(f"{site_url}/crawl/trap/41") as r:
            assert extract_links(await r.text(), str(r.url)) == [f"{site_url}/crawl/trap/42"]
        async with s.get(f"{site_url}/crawl/calendar/2024/12/") as r:
            assert f"{site_url}/crawl/calendar/2025/01/" in extract_links(await r.text(), str(r.url))
        async with s.get(f"{site_url}/crawl/config-old.html") as r:
            assert canonical_url(await r.text(), str(r.url)) == f"{site_url}/crawl/config.html"
        for path, status in [("missing.html", 404), ("broken.html", 500), ("static/logo.png", 200), ("llms.txt", 200)]:
            async with s.get(f"{site_url}/crawl/{path}") as r:
                assert r.status == status
        started = time.monotonic()
        async with s.get(f"{site_url}/crawl/slow.html") as r:
            assert r.status == 200 and time.monotonic() - started >= 1.4
        async with s.get(f"{site_url}/sitemaps/crawl.xml.gz") as r:
            assert r.content_type == "application/gzip" and (await r.read())[:2] == b"\x1f\x8b"


async def test_crawl_site_home_links(site_url: str) -> None:
    """The home page links to every kind of URL a crawler must handle; the sitemap-only page is not among them."""
    async with aiohttp.ClientSession() as s, s.get(f"{site_url}/crawl/") as r:
        links = extract_links(await r.text(), str(r.url))
    crawl = f"{site_url}/crawl/"
    for path in ["install.html", "search.html?a=1&b=2", "trap/1", "calendar/2024/01/", "logout", "private/secret.html"]:
        assert crawl + path in links
    assert crawl + "sitemap-only.html" not in links and crawl + "llms-only.html" not in links
    assert crawl + "edit.html" not in links  # rel=nofollow
    assert len([u for u in links if "search.html" in u]) == 1
