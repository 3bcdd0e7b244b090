"""Bad input through the real pipeline: every case ends in a clear error of the expected class, or a sensible result.

Each case runs against the `clean` runtime (embedded PostgreSQL, MiniLM) and the local test site; a case that fails
must leave the database exactly as it was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mcp_web_ingest.errors import (
    BlockedAddressError,
    ExtractError,
    FetchError,
    InvalidInputError,
    UnsupportedContentError,
)
from mcp_web_ingest.ingest.fetch import HttpFetcher
from mcp_web_ingest.pipeline import PolicyPipeline
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest

from .conftest import free_port

pytestmark = pytest.mark.both_backends


@dataclass(frozen=True)
class Case:
    """One input: an index_page URL (or a search), the settings it runs under, and what must come of it."""

    id: str
    url: str | None = None  # "{site}" and "{port}" are filled in; None = a search case
    query: str = "froobnicator"
    k: int | None = None
    error: type[Exception] | None = None
    fragment: str = ""
    settings: dict[str, Any] | None = None  # overrides of the runtime's settings for this case's fetcher
    check: Callable[[Any], bool] | None = None  # a predicate on the outcome, or on an error's message


GUARD = {"allow_private_networks": False}
GUARD_SITE = {"allow_private_networks": False, "allowed_hosts": ["127.0.0.1"]}
PAGES = lambda outcome: outcome.chunk_count >= 1  # noqa: E731 - a tiny predicate reads best inline

CASES = [
    # --- malformed and relative URLs, unsupported schemes ---
    Case("empty-url", "", error=InvalidInputError, fragment="URL is empty"),
    Case("blank-url", "   ", error=InvalidInputError, fragment="URL is empty"),
    Case("not-a-url", "not a url", error=InvalidInputError, fragment="absolute"),
    Case("relative", "/guide/install.html", error=InvalidInputError, fragment="absolute"),
    Case("schemeless", "www.example.com/page", error=InvalidInputError, fragment="absolute"),
    Case("no-host", "http:///path", error=InvalidInputError, fragment="host"),
    Case("bad-ipv6", "http://[::1/x", error=InvalidInputError, fragment="invalid host or port"),
    Case("bad-port", "http://127.0.0.1:99999/", error=InvalidInputError, fragment="port"),
    Case("space-in-host", "http://exa mple.com/", error=InvalidInputError, fragment="spaces"),
    Case("too-long", "http://127.0.0.1/" + "a" * 3000, error=InvalidInputError, fragment="characters long"),
    Case("file", "file:///etc/passwd", error=InvalidInputError, fragment="Unsupported URL scheme 'file'"),
    Case("ftp", "ftp://127.0.0.1/pub/x", error=InvalidInputError, fragment="Unsupported URL scheme 'ftp'"),
    Case("gopher", "gopher://127.0.0.1:70/_x", error=InvalidInputError, fragment="scheme 'gopher'"),
    Case("data", "data:text/html,<h1>x</h1>", error=InvalidInputError, fragment="scheme 'data'"),
    Case("javascript", "javascript:alert(1)", error=InvalidInputError, fragment="scheme 'javascript'"),
    # --- private and metadata addresses with the guard on ---
    Case("private", "http://10.0.0.5/", error=BlockedAddressError, fragment="a private address", settings=GUARD),
    Case(
        "metadata",
        "http://169.254.169.254/latest/meta-data/",
        error=BlockedAddressError,
        fragment="the cloud metadata address",
        settings=GUARD,
    ),
    Case("ipv6-loopback", "http://[::1]:{port}/", error=BlockedAddressError, fragment="loopback", settings=GUARD),
    Case("decimal-ip", "http://2130706433:{port}/", error=BlockedAddressError, fragment="127.0.0.1", settings=GUARD),
    Case("hex-ip", "http://0x7f.1:{port}/", error=BlockedAddressError, fragment="127.0.0.1", settings=GUARD),
    Case(
        "the-site-itself",
        "{site}/guide/install.html",
        error=BlockedAddressError,
        fragment="ALLOW_PRIVATE_NETWORKS=true",
        settings=GUARD,
    ),
    Case("site-allowed", "{site}/guide/install.html", settings=GUARD_SITE, check=PAGES),
    Case(
        "redirect-to-private",
        "{site}/redirect-to?location=http://10.0.0.5/",
        error=BlockedAddressError,
        fragment="10.0.0.5, a private address",
        settings=GUARD_SITE,
    ),
    Case(
        "redirect-to-metadata",
        "{site}/redirect-to?location=http://169.254.169.254/",
        error=BlockedAddressError,
        fragment="metadata",
        settings=GUARD_SITE,
    ),
    # --- HTTP-level failures ---
    Case("redirect-loop", "{site}/redirect-loop", error=FetchError, fragment="redirect loop"),
    Case(
        "redirect-to-file",
        "{site}/redirect-to?location=file:///etc/passwd",
        error=FetchError,
        fragment="only http:// and https://",
    ),
    Case("404", "{site}/status/404", error=FetchError, fragment="HTTP 404"),
    Case("410", "{site}/status/410", error=FetchError, fragment="removed"),
    Case("500", "{site}/status/500", error=FetchError, fragment="gave up after 2 attempts"),
    Case("503", "{site}/status/503", error=FetchError, fragment="HTTP 503"),
    Case("429-retry-after", "{site}/ratelimited?key=bad-input&after=3600", error=FetchError, fragment="wait 3600 s"),
    Case("connection-refused", "http://127.0.0.1:{closed}/", error=FetchError, fragment="Could not connect"),
    Case("tls-to-plain-http", "https://127.0.0.1:{port}/guide/install.html", error=FetchError, fragment="TLS"),
    Case(
        "slow-drip",
        "{site}/bad/drip?seconds=5",
        error=FetchError,
        fragment="Timed out",
        settings={"fetch_timeout_s": 0.8},
    ),
    Case("50mb-page", "{site}/big.html?size=52428800", error=FetchError, fragment="larger than the limit"),
    Case("50mb-declared", "{site}/big.html?size=52428800&length=1", error=FetchError, fragment="Content-Length"),
    Case("gzip-bomb", "{site}/gzip-bomb", error=FetchError, fragment="larger than the limit"),
    # --- content that is not (good) HTML ---
    Case("binary", "{site}/binary.bin", error=UnsupportedContentError, fragment="application/octet-stream"),
    Case("image", "{site}/crawl/static/logo.png", error=UnsupportedContentError, fragment="image/png"),
    Case("broken-pdf", "{site}/doc.pdf", error=ExtractError, fragment="damaged or truncated"),
    Case("lying-content-type", "{site}/lying.html", error=UnsupportedContentError, fragment="binary data"),
    Case("unlabelled-broken-pdf", "{site}/no-content-type.bin", error=ExtractError, fragment="damaged or truncated"),
    Case("empty-page", "{site}/empty.html", error=ExtractError, fragment=""),
    Case("empty-body", "{site}/bad/empty-body", error=ExtractError, fragment=""),
    Case("nav-only", "{site}/bad/nav-only.html", error=ExtractError, fragment=""),
    Case("broken-html", "{site}/bad/broken.html", check=PAGES),
    Case("unclosed-title", "{site}/bad/broken.html?title=open", error=ExtractError, fragment="no readable text"),
    Case("deeply-nested", "{site}/bad/nested?depth=1500", check=PAGES),
    Case("nested-100k", "{site}/bad/nested?depth=100000", check=PAGES),  # cut in one linear pass, not quadratic
    # --- credentials in the URL: used for the fetch, never part of what is stored or said ---
    Case(
        "credentials-404",
        "http://alice:s3cret@127.0.0.1:{port}/status/404",
        error=FetchError,
        fragment="http://127.0.0.1:",
        check=lambda message: "s3cret" not in message and "alice" not in message,
    ),
    Case(
        "credentials-page",
        "http://alice:s3cret@127.0.0.1:{port}/guide/install.html",
        check=lambda o: o.chunk_count >= 1 and "alice" not in o.url and "s3cret" not in o.url,
    ),
    Case("huge-code-block", "{site}/bad/huge-code.html?lines=1500", check=PAGES),
    Case("nul-byte-in-page", "{site}/bad/nul.html", check=PAGES),
    Case("latin1", "{site}/latin1.html", check=PAGES),
    Case("mislabelled-utf8", "{site}/mislabelled.html", check=PAGES),
    Case("shift-jis-meta", "{site}/bad/sjis.html", check=lambda o: o.title == "文字コード"),
    Case("utf16-bom", "{site}/bad/utf16.html", check=lambda o: o.title == "文字コード"),
    # --- search arguments ---
    Case("empty-query", query="", error=InvalidInputError, fragment="empty"),
    Case("blank-query", query=" \t\n ", error=InvalidInputError, fragment="empty"),
    Case("10kb-query", query="froobnicator " * 800, error=InvalidInputError, fragment="characters long"),
    Case("k-zero", k=0, error=InvalidInputError, fragment="k must be between"),
    Case("k-negative", k=-3, error=InvalidInputError, fragment="k must be between"),
    Case("k-huge", k=10**9, error=InvalidInputError, fragment="k must be between"),
    Case("k-max", k=100, check=lambda o: len(o.hits) >= 1),
    Case("tsquery-syntax", query="install & | ! ( ) ' :* <-> \\", check=lambda o: True),
    Case("nul-in-query", query="install\x00froobnicator", check=lambda o: len(o.hits) >= 1),
    Case("emoji-query", query="🔧 installing ✨ froobnicator", check=lambda o: len(o.hits) >= 1),
]


def _fill(template: str, site_url: str) -> str:
    port = site_url.rsplit(":", 1)[1]
    return template.format(site=site_url, port=port, closed=free_port())


def _prepare(case: Case, clean: Runtime, site_url: str) -> tuple[Callable[[], Awaitable[Any]], HttpFetcher | None]:
    """The call of one case, and the fetcher to close: index_page with a fetcher of the case's settings, or search."""
    if case.url is None:
        return (lambda: clean.pipeline.search(SearchRequest.create(clean.settings, case.query, k=case.k))), None
    settings = clean.settings.model_copy(update={"fetch_retries": 2, **(case.settings or {})})
    fetcher = HttpFetcher(settings, retry_base_wait_s=0.01)
    # The runtime's store and embedder; only the fetcher differs.
    pipeline = PolicyPipeline(clean.settings, fetcher, clean.embedder, clean.store, clean.metrics)
    # The site counts requests per key (/flaky, /ratelimited): a key per backend keeps the two runs independent.
    url = _fill(case.url, site_url).replace("key=", f"key={clean.settings.vector_store}-")
    return (lambda: pipeline.index_page(url)), fetcher


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) if isinstance(c, Case) else c for c in CASES])
async def test_bad_input(case: Case, clean: Runtime, site_url: str) -> None:
    if case.url is None and case.error is None:
        await clean.pipeline.index_page(f"{site_url}/guide/install.html")  # something to find
    before = await clean.store.catalog.counts()
    call, fetcher = _prepare(case, clean, site_url)
    try:
        if case.error is not None:
            # pytest.raises(WebIngestError subclass): a raw aiohttp/psycopg/parser exception fails the case.
            with pytest.raises(case.error) as info:
                await call()
            message = str(info.value)
            assert case.fragment in message, message
            assert case.check is None or case.check(message), message
            assert message and len(message) < 2000  # a readable sentence, not a dump
            assert await clean.store.catalog.counts() == before
        else:
            outcome = await call()
            assert case.check is not None and case.check(outcome), outcome
            if case.url is None:
                assert await clean.store.catalog.counts() == before
    finally:
        if fetcher is not None:
            await fetcher.aclose()
