"""HttpFetcher against the local test site over real HTTP on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import FetchError, InvalidInputError
from mcp_web_ingest.ingest.content import decode_html, parse_content_type
from mcp_web_ingest.ingest.fetch import ACCEPT_HTML_FIRST, ACCEPT_MARKDOWN_FIRST, HttpFetcher

from .site import HITS, make_site_app, serve_site


@dataclass(frozen=True)
class Site:
    """The running test site: its base URL and app (for request counts)."""

    base: str
    app: web.Application

    def url(self, path: str) -> str:
        """Absolute URL of a path on the site."""
        return self.base + path

    def hits(self, path: str) -> int:
        """How many requests the site has seen for a path."""
        return self.app[HITS][path]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site() -> AsyncIterator[Site]:
    """One site per module; tests that count requests use their own query keys or compare before/after."""
    app = make_site_app()
    async with serve_site(app) as base:
        yield Site(base, app)


@pytest_asyncio.fixture(loop_scope="session")
async def make_fetcher(tmp_path: Path) -> AsyncIterator[Callable[..., HttpFetcher]]:
    """Factory of HttpFetchers with fast test settings; all are closed at teardown."""
    made: list[HttpFetcher] = []

    def factory(**overrides: Any) -> HttpFetcher:
        options: dict[str, Any] = {
            "_env_file": None,  # a developer's .env must not change the tests
            "data_dir": tmp_path,
            "fetch_retries": 1,
            "fetch_timeout_s": 5.0,
            "fetch_connect_timeout_s": 2.0,
            "fetch_retry_max_wait_s": 2.0,
            "allow_private_networks": True,  # the site is on 127.0.0.1
        }
        options.update(overrides)
        fetcher = HttpFetcher(Settings(**options), retry_base_wait_s=0.01)
        made.append(fetcher)
        return fetcher

    yield factory
    for fetcher in made:
        await fetcher.aclose()


# --- success paths ---


async def test_ok_page(site: Site, make_fetcher) -> None:
    url = site.url("/guide/install.html")
    page = await make_fetcher().fetch(url)
    assert page.status == 200
    assert page.url == url
    assert page.final_url == url
    assert page.content_type == "text/html"
    assert page.encoding == "utf-8"
    assert "Installing the Froobnicator" in page.text
    assert page.elapsed_s > 0


async def test_etag_and_last_modified_are_kept(site: Site, make_fetcher) -> None:
    page = await make_fetcher().fetch(site.url("/etag.html"))
    assert page.etag is not None and page.etag.startswith('"')
    assert page.last_modified == "Mon, 15 Jan 2024 12:00:00 GMT"


async def test_request_headers(site: Site, make_fetcher) -> None:
    page = await make_fetcher(user_agent="froob-test-agent/1.0").fetch(site.url("/echo-headers"))
    assert "User-Agent: froob-test-agent/1.0" in page.text
    assert f"Accept: {ACCEPT_MARKDOWN_FIRST}" in page.text
    assert ACCEPT_MARKDOWN_FIRST.startswith("text/markdown, text/html;q=0.9")
    page = await make_fetcher(prefer_markdown=False).fetch(site.url("/echo-headers"))
    assert f"Accept: {ACCEPT_HTML_FIRST}" in page.text
    assert "Accept-Encoding: gzip, deflate" in page.text


async def test_gzip_page_is_decompressed(site: Site, make_fetcher) -> None:
    page = await make_fetcher().fetch(site.url("/gzip.html"))
    assert "Squeezed zorblax notes." in page.text


async def test_xhtml_is_accepted(site: Site, make_fetcher) -> None:
    page = await make_fetcher().fetch(site.url("/xhtml.xhtml"))
    assert page.content_type == "application/xhtml+xml"
    assert "Zorblax record format" in page.text


async def test_missing_content_type_is_sniffed(site: Site, make_fetcher) -> None:
    page = await make_fetcher().fetch(site.url("/no-content-type.html"))
    assert page.content_type == "text/html"
    assert "Unlabelled page" in page.text


async def test_empty_page_is_fetched(site: Site, make_fetcher) -> None:
    page = await make_fetcher().fetch(site.url("/empty.html"))
    assert page.text.strip() == "<html><body></body></html>"


async def test_start_aclose_and_reuse(site: Site, make_fetcher) -> None:
    fetcher = make_fetcher()
    await fetcher.start()
    await fetcher.fetch(site.url("/"))
    await fetcher.aclose()
    await fetcher.aclose()  # idempotent
    page = await fetcher.fetch(site.url("/"))  # a closed fetcher opens a new session
    assert "Welcome to the Froobnicator documentation" in page.text


# --- redirects ---


async def test_redirect_is_followed(site: Site, make_fetcher) -> None:
    url = site.url("/redirect")
    page = await make_fetcher().fetch(url)
    assert page.url == url
    assert page.final_url == site.url("/guide/install.html")
    assert "Froobnicator" in page.text


async def test_relative_redirect_chain_within_limit(site: Site, make_fetcher) -> None:
    page = await make_fetcher(fetch_max_redirects=3).fetch(site.url("/redirect-chain/3"))
    assert page.final_url == site.url("/redirect-chain/0")
    assert "End of chain" in page.text


async def test_redirect_chain_over_limit(site: Site, make_fetcher) -> None:
    with pytest.raises(FetchError, match="Too many redirects") as info:
        await make_fetcher(fetch_max_redirects=2).fetch(site.url("/redirect-chain/3"))
    assert info.value.url == site.url("/redirect-chain/3")


async def test_redirect_loop(site: Site, make_fetcher) -> None:
    with pytest.raises(FetchError, match="Too many redirects"):
        await make_fetcher().fetch(site.url("/redirect-loop"))


async def test_redirect_to_other_scheme_is_refused(site: Site, make_fetcher) -> None:
    with pytest.raises(FetchError, match="only http:// and https://"):
        await make_fetcher().fetch(site.url("/redirect-to?location=file:///etc/passwd"))


async def test_check_target_sees_every_hop(site: Site, make_fetcher, tmp_path: Path) -> None:
    seen: list[str] = []

    class Recording(HttpFetcher):
        async def _check_target(self, url: str) -> None:
            seen.append(url)
            await super()._check_target(url)

    options = {"data_dir": tmp_path, "fetch_retries": 1, "allow_private_networks": True}
    fetcher = Recording(Settings(_env_file=None, **options))  # type: ignore[call-arg]
    try:
        await fetcher.fetch(site.url("/redirect-chain/2"))
    finally:
        await fetcher.aclose()
    assert seen == [site.url(f"/redirect-chain/{n}") for n in (2, 1, 0)]


# --- HTTP errors and retries ---


async def test_404_is_not_retried(site: Site, make_fetcher) -> None:
    before = site.hits("/status/404")
    with pytest.raises(FetchError, match=r"HTTP 404 Not Found .*check the URL") as info:
        await make_fetcher(fetch_retries=3).fetch(site.url("/status/404"))
    assert info.value.status == 404
    assert info.value.url == site.url("/status/404")
    assert site.hits("/status/404") - before == 1


async def test_500_gives_up_after_retries(site: Site, make_fetcher) -> None:
    before = site.hits("/status/500")
    with pytest.raises(FetchError, match=r"HTTP 500 .*gave up after 2 attempts") as info:
        await make_fetcher(fetch_retries=2).fetch(site.url("/status/500"))
    assert info.value.status == 500
    assert site.hits("/status/500") - before == 2


async def test_flaky_succeeds_after_two_failures(site: Site, make_fetcher) -> None:
    before = site.hits("/flaky")
    page = await make_fetcher(fetch_retries=3).fetch(site.url("/flaky?key=ok&fail=2"))
    assert "plonkmeister" in page.text
    assert site.hits("/flaky") - before == 3


async def test_flaky_fails_when_attempts_run_out(site: Site, make_fetcher) -> None:
    with pytest.raises(FetchError, match="HTTP 500") as info:
        await make_fetcher(fetch_retries=2).fetch(site.url("/flaky?key=short&fail=2"))
    assert info.value.status == 500


async def test_retry_after_seconds_is_honoured(site: Site, make_fetcher) -> None:
    started = time.monotonic()
    page = await make_fetcher(fetch_retries=2, fetch_retry_max_wait_s=5).fetch(site.url("/ratelimited?key=s&after=1"))
    assert "Thanks for waiting" in page.text
    # The exponential backoff alone would wait ~0.01 s; the server asked for 1 s.
    assert time.monotonic() - started >= 0.9


async def test_retry_after_http_date(site: Site, make_fetcher) -> None:
    page = await make_fetcher(fetch_retries=2, fetch_retry_max_wait_s=5).fetch(
        site.url("/ratelimited?key=d&after=1&date=1")
    )
    assert "Thanks for waiting" in page.text


async def test_retry_after_over_cap_gives_up_at_once(site: Site, make_fetcher) -> None:
    before = site.hits("/ratelimited")
    with pytest.raises(FetchError, match=r"HTTP 429 .*wait 3600 s.*try again after") as info:
        await make_fetcher(fetch_retries=3, fetch_retry_max_wait_s=2).fetch(site.url("/ratelimited?key=cap&after=3600"))
    assert info.value.status == 429
    assert site.hits("/ratelimited") - before == 1


# --- content type and size ---


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("/binary.bin", r"sent Content-Type application/octet-stream and its body is no format that can be indexed"),
        ("/lying.html", r"claims to be text/html but its body is binary"),
        ("/crawl/static/logo.png", r"not a document that can be indexed \(Content-Type: image/png\)"),
        ("/crawl/static/style.css", r"not a document that can be indexed \(Content-Type: text/css\)"),
    ],
)
async def test_unreadable_content_is_rejected(site: Site, make_fetcher, path: str, pattern: str) -> None:
    with pytest.raises(FetchError, match=pattern) as info:
        await make_fetcher().fetch(site.url(path))
    assert "HTML, Markdown, plain text, reStructuredText, PDF and Jupyter notebooks" in str(info.value)
    assert info.value.status == 200


@pytest.mark.parametrize(
    ("path", "fmt", "media_type"),
    [
        ("/doc.pdf", "pdf", "application/pdf"),
        ("/no-content-type.bin", "pdf", "application/pdf"),  # sniffed by its %PDF- magic
        ("/plain.txt", "text", "text/plain"),
        ("/no-content-type.html", "html", "text/html"),
    ],
)
async def test_documents_are_read_by_format(site: Site, make_fetcher, path: str, fmt: str, media_type: str) -> None:
    page = await make_fetcher().fetch(site.url(path))
    assert (page.format, page.content_type) == (fmt, media_type)
    if fmt == "pdf":  # a binary format keeps its bytes
        assert page.body.startswith(b"%PDF-") and page.text == ""
    else:
        assert page.text and page.body == b""


async def test_big_streamed_page_is_cut_off(site: Site, make_fetcher) -> None:
    with pytest.raises(FetchError, match="larger than the limit of 65536 bytes"):
        await make_fetcher(fetch_max_bytes=65536).fetch(site.url("/big.html?size=1000000"))


async def test_big_page_rejected_by_content_length(site: Site, make_fetcher) -> None:
    with pytest.raises(FetchError, match=r"65536 bytes.*Content-Length says"):
        await make_fetcher(fetch_max_bytes=65536).fetch(site.url("/big.html?size=1000000&length=1"))


async def test_page_under_the_limit_is_fetched(site: Site, make_fetcher) -> None:
    page = await make_fetcher(fetch_max_bytes=65536).fetch(site.url("/big.html?size=30000"))
    assert 30000 <= len(page.text) <= 65536


async def test_gzip_bomb_is_cut_off_on_decompressed_size(site: Site, make_fetcher) -> None:
    # On the wire the bomb is far below the limit, so only counting decompressed bytes can stop it.
    async with (
        aiohttp.ClientSession(auto_decompress=False) as raw,
        raw.get(site.url("/gzip-bomb")) as resp,
    ):
        compressed = await resp.read()
    limit = 1024 * 1024
    assert len(compressed) < limit // 4
    with pytest.raises(FetchError, match=f"larger than the limit of {limit} bytes"):
        await make_fetcher(fetch_max_bytes=limit).fetch(site.url("/gzip-bomb"))


# --- timeouts and connection failures ---


@pytest.mark.parametrize("path", ["/slow?delay=2", "/slow-body?delay=2"])
async def test_slow_server_times_out(site: Site, make_fetcher, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="Timed out") as info:
        await make_fetcher(fetch_timeout_s=0.3).fetch(site.url(path))
    assert info.value.url == site.url(path)
    assert time.monotonic() - started < 1.5


async def test_connection_refused(make_fetcher) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago is almost surely closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with pytest.raises(FetchError, match=r"Could not connect to host 127\.0\.0\.1") as info:
        await make_fetcher(fetch_retries=2).fetch(url)
    assert info.value.url == url
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)


@pytest.mark.parametrize("url", ["ftp://example.com/file", "file:///etc/passwd", "not a url", "http:///no-host"])
async def test_invalid_url_is_rejected(make_fetcher, url: str) -> None:
    with pytest.raises(InvalidInputError, match="only absolute http"):
        await make_fetcher().fetch(url)


# --- charsets ---


@pytest.mark.parametrize(
    ("path", "expected", "encoding"),
    [
        ("/latin1.html", "Café crème brûlée", "cp1252"),  # header charset (ISO-8859-1 read as windows-1252)
        ("/meta-charset.html", "Größen und Maße – 10 €", "cp1252"),  # <meta http-equiv> charset
        ("/nocharset.html", "cost 5 € and shipped with “smart quotes”", "cp1252"),  # no label: cp1252 fallback
        ("/mislabelled.html", "Legacy changelog – Café edition", "cp1252"),  # labelled UTF-8, really cp1252
        ("/utf8-bom.html", "Naïve façade", "utf-8"),  # BOM
        ("/guide/config.html", 'title="Link to this heading">¶</a>', "utf-8"),  # header charset utf-8
    ],
)
async def test_charsets(site: Site, make_fetcher, path: str, expected: str, encoding: str) -> None:
    page = await make_fetcher().fetch(site.url(path))
    assert expected in page.text
    assert page.encoding == encoding
    assert not page.text.startswith("\ufeff")


def test_decode_html_edge_cases() -> None:
    text = "<p>Zorblax ünïcode</p>"
    assert decode_html(b"\xff\xfe" + text.encode("utf-16-le"), None) == (text, "utf-16-le")
    assert decode_html(text.encode("utf-8"), "no-such-charset") == (text, "utf-8")
    # A declared legacy charset with a stray undecodable byte is kept, with a replacement character.
    decoded, used = decode_html(b"caf\xe9 \x81", "windows-1252")
    assert (decoded, used) == ("café \ufffd", "cp1252")


def test_parse_content_type() -> None:
    assert parse_content_type('Text/HTML; Charset="ISO-8859-1"') == ("text/html", "ISO-8859-1")
    assert parse_content_type("text/html") == ("text/html", None)
    assert parse_content_type("") == (None, None)
    assert parse_content_type(None) == (None, None)


async def test_conditional_get_returns_304_until_the_page_changes(site: Site, make_fetcher) -> None:
    """ETag and Last-Modified from a first fetch make the next one conditional; a changed page comes back whole."""
    fetcher = make_fetcher()
    url = site.base + "/etag.html"
    first = await fetcher.fetch(url)
    assert first.status == 200 and first.etag and first.last_modified
    again = await fetcher.fetch(url, etag=first.etag, last_modified=first.last_modified)
    assert again.status == 304 and again.text == "" and again.etag == first.etag
    by_date = await fetcher.fetch(url, last_modified=first.last_modified)
    assert by_date.status == 304
    async with aiohttp.ClientSession() as s, s.put(url, data=b"<html><body><h1>New</h1><p>x</p></body></html>"):
        pass
    changed = await fetcher.fetch(url, etag=first.etag, last_modified=first.last_modified)
    assert changed.status == 200 and "New" in changed.text and changed.etag != first.etag
