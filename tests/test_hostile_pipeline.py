"""A hostile page end to end: served over HTTP on 127.0.0.1, indexed by the real runtime, searched; nothing comes back
that a browser could run or that hides text (script-scheme links, raw markup, bidi controls, zero-width characters).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.interface.schemas import search_result
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest

from .site import serve_site

_SCRIPT_SCHEME = re.compile(r"(?i)(?:\]\(|<|href=|src=|^)\s*<?\s*(?:javascript|vbscript|data)\s*:", re.MULTILINE)
_LIVE_MARKUP = re.compile(r"<[A-Za-z/!?]")
_INVISIBLE = re.compile("[\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]")

_HOSTILE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Hostile\u202e page\u200b - Site</title>
<meta property="og:title" content="Hostile\u2066 page"></head>
<body><main>
<h1 id='top" onmouseover="alert(1)'>Zorblax hostile\u202e page</h1>
<p>The zorblax gadget is configured with <a href="java&#x09;script:alert(1)">the tab link</a>,
<a href="JaVaScRiPt:alert(2)">the mixed-case link</a>, <a href="vbscript:msgbox(3)">the vbscript link</a>,
<a href="java&#x0A;script:alert(4)">the newline link</a> and
<a href="&#x01; javascript:alert(5)">the control link</a>.</p>
<p>Zorblax images: <a href="javascript:alert(6)"><img alt="click" src="x.png"></a>
<img alt="[forged](javascript:alert(7))" src="javascript:alert(8)">
<a href="/ok"><img alt="[nested](javascript:alert(9))" src="data:text/html,x"></a>.</p>
<h2 id="javascript:alert(10)">Zorblax text\u200b tricks</h2>
<p>Zorblax text: [text link](javascript:alert(11)) and &lt;script&gt;alert(12)&lt;/script&gt; and
&lt;img src=x onerror=alert(13)&gt; and in\u202evisible zero\u200bwidth\ufeff characters.</p>
<p>[ref]: javascript:alert(14)</p>
<pre><code class="language-html">&lt;script&gt;zorblaxCode()&lt;/script&gt;</code></pre>
DEEP
</main></body></html>
""".replace("DEEP", "<div>" * 20_000 + "<p>Zorblax deep paragraph.</p>" + "</div>" * 20_000)


@pytest.fixture(scope="module")
async def hostile_url() -> AsyncIterator[str]:
    """A site on 127.0.0.1 serving the hostile page and a page too big to extract in a hundredth of a second."""
    big = "<html><body><main><h1>Big</h1>" + "<p>zorblax filler text</p>" * 50_000 + "</main></body></html>"
    pages = {"hostile.html": _HOSTILE, "big.html": big}

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=pages[request.match_info["name"]], content_type="text/html")

    app = web.Application()
    app.router.add_get("/{name}", page)
    async with serve_site(app) as url:
        yield url


def _assert_safe(field: str, value: str) -> None:
    assert not _SCRIPT_SCHEME.search(value), (field, value)
    assert not _INVISIBLE.search(value), (field, value)


@pytest.mark.timeout(300)
async def test_hostile_page_is_indexed_and_searched_safely(clean: Runtime, hostile_url: str) -> None:
    rt = clean
    out = await rt.pipeline.index_page(f"{hostile_url}/hostile.html")
    assert out.chunk_count >= 2
    _assert_safe("title", out.title)
    assert out.title == "Zorblax hostile page"

    # One page gives at most SEARCH_CHUNKS_PER_PAGE results: one search for each of the chunks checked below.
    hits = []
    for query in ("zorblax gadget configured tab link", "zorblax deep paragraph", "zorblax text tricks"):
        res = await rt.pipeline.search(SearchRequest.create(rt.settings, query, k=20, mode="lexical"))
        assert res.hits
        hits += res.hits
    texts = " ".join(h.text for h in hits)
    assert "the tab link" in texts and "Zorblax deep paragraph" in texts  # the text stays, the targets go
    for h in hits:
        for field, value in (
            ("url", h.url),
            ("deep_link", h.deep_link),
            ("title", h.title),
            ("section", " › ".join(h.section_path)),
            ("text", h.text),
        ):
            _assert_safe(field, value)
        assert h.url.startswith("http://127.0.0.1:")
        assert not re.search(r"[\"'<>\s]", h.deep_link), h.deep_link
        code = re.sub(r"```.*?```", "", h.text, flags=re.DOTALL)
        assert not _LIVE_MARKUP.search(re.sub(r"`[^`]*`", "", code)), h.text

    for hit in search_result(res).results:  # what the search tool returns
        for field in ("url", "deep_link", "title", "section", "text"):
            _assert_safe(field, getattr(hit, field))
        for other in hit.also_matched:  # the page's other matching sections, named beside the result
            _assert_safe("also_matched", other.section)
            _assert_safe("also_matched", other.deep_link)
            assert not re.search(r"[\"'<>\s]", other.deep_link), other.deep_link


@pytest.mark.timeout(300)
async def test_extraction_time_limit_fails_the_page_clearly(clean: Runtime, hostile_url: str) -> None:
    from mcp_web_ingest.pipeline import PolicyPipeline

    hurried = clean.settings.model_copy(update={"extract_timeout_s": 0.01})
    pipeline = PolicyPipeline(hurried, clean.fetcher, clean.embedder, clean.store, clean.metrics)
    with pytest.raises(ExtractError, match="EXTRACT_TIMEOUT_S"):
        await pipeline.index_page(f"{hostile_url}/big.html")
    assert (await clean.store.catalog.counts())["pages"] == 0
    out = await clean.pipeline.index_page(f"{hostile_url}/big.html")  # the default limit is ample
    assert out.chunk_count > 0
