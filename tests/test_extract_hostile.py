"""Hostile HTML: deep nesting, huge link counts, script links however spelled, invisible and bidi characters.

Everything here runs the real extraction (lexbor, html-to-markdown) and, for the time limit, real worker
processes. Time is never the assertion: outcomes and bounded work are, under generous pytest timeouts.
"""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest import extract_worker
from mcp_web_ingest.ingest.chunking import chunk_page, strip_link_targets
from mcp_web_ingest.ingest.extract import extract_page
from mcp_web_ingest.ingest.extract_worker import MAX_WORKER_RSS, extract_isolated, extract_with_links
from mcp_web_ingest.ingest.html_guard import MAX_DEPTH, MAX_LINKS, limit_nesting
from mcp_web_ingest.ingest.sanitize import clean_markdown, clean_text, safe_fragment, safe_url
from mcp_web_ingest.models import ExtractedPage

URL = "https://example.com/docs/page.html"
DOCS = Path("/usr/share/doc/python3.11/html")
# Link targets in markdown, inline ("](x") and reference definitions ("[x]: x"), and autolinks/raw tags.
_TARGET = re.compile(r"\]\(\s*<?([^)>]*)|^ {0,3}\[[^\]]+\]:\s*<?(\S*)", re.MULTILINE)
_LIVE_MARKUP = re.compile(r"<[A-Za-z/!?]")
_INVISIBLE = re.compile(
    "[\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)


def _page(body: str, head: str = "") -> ExtractedPage:
    return extract_page(f"<!doctype html><html><head>{head}</head><body>{body}</body></html>", URL)


def _tree_depth(html: str) -> int:
    """Depth of the element tree lexbor builds (iterative, so it cannot itself recurse too deep)."""
    tree = LexborHTMLParser(html)
    deepest, todo = 0, [(tree.root, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        child = node.child
        while child is not None:
            if child.tag not in ("-text", "_text", "-comment", "_comment"):
                todo.append((child, depth + 1))
            child = child.next
    return deepest


def _unsafe_targets(markdown: str) -> list[str]:
    """Link targets whose scheme is not allowed, read the way a renderer and a browser would read them."""
    bad = []
    for m in _TARGET.finditer(markdown):
        target = html_lib.unescape(re.sub(r"\\(.)", r"\1", m.group(1) or m.group(2) or ""))
        target = re.sub(r"[\t\n\r]", "", target).strip("".join(map(chr, range(33))))
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", target)
        if scheme and scheme.group(1).lower() not in ("http", "https", "mailto"):
            bad.append(target)
    return bad


def _outside_code(markdown: str) -> str:
    """The markdown without fenced blocks and inline code spans (where markup is inert)."""
    markdown = re.sub(r"^```[^\n]*\n.*?^```$", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(`+)[^`\n]+?\1", "", markdown)


def _assert_inert(page: ExtractedPage) -> None:
    texts = [page.markdown, *(c.text for c in chunk_page(page)), *(c.text for c in chunk_page(page, keep_links=True))]
    for text in texts:
        assert not _unsafe_targets(text), text
        assert not re.search(r"(?i)\]\(\s*<?\s*(?:javascript|vbscript|data):", text), text
        assert not _LIVE_MARKUP.search(_outside_code(text)), text


# --- 1. nesting -------------------------------------------------------------------------------------------------

_DEEP = {
    "divs-20k": "<div>" * 20_000 + "<p>deep text</p>" + "</div>" * 20_000,
    "divs-50k": "<div>" * 50_000 + "<p>deep text</p>" + "</div>" * 50_000,
    "divs-100k": "<div>" * 100_000 + "<p>deep text</p>" + "</div>" * 100_000,  # 1.1 MB: 145 s before
    "lists-20k": "<main><h1>T</h1>" + "<ul><li>" * 20_000 + "deep text" + "</li></ul>" * 20_000 + "</main>",
    "lists-50k": "<main><h1>T</h1>" + "<ul><li>" * 50_000 + "deep text" + "</li></ul>" * 50_000 + "</main>",
    "unclosed-lists-50k": "<ul><li>" * 50_000 + "deep text",
    "spans-50k": "<p>" + "<span>" * 50_000 + "deep text",
    "misnested-50k": "<span><div></span>" * 50_000 + "deep text",
    "tables-20k": "<table><tr><td>" * 20_000 + "deep text",
    "dd-li-50k": "<dd><li>" * 50_000 + "deep text",
}


@pytest.mark.timeout(30)  # each case takes about a second; before the cut, divs-100k took 94 s and lists-50k 33 s
@pytest.mark.parametrize("name", sorted(_DEEP))
def test_deep_nesting_is_cut_before_parsing(name: str) -> None:
    html = _DEEP[name]
    guarded = limit_nesting(html)
    # Bounded work: what lexbor builds is at most about MAX_DEPTH deep (tables add their implied rows).
    assert _tree_depth(guarded) <= 2 * MAX_DEPTH
    page = extract_page(html, URL)
    assert "deep text" in page.markdown


@pytest.mark.timeout(120)
def test_deep_nesting_keeps_its_text_and_crawl_links() -> None:
    html = "<main><h1>Deep</h1>" + "<div>" * 30_000 + '<p>bottom <a href="/next">next</a></p>' + "</div>" * 30_000
    page, links = extract_with_links(html + "</main>", URL)
    assert "bottom" in page.markdown and "next" in page.markdown
    assert links == ()  # the link sat 30,000 levels down: its tag was cut, its text kept


@pytest.mark.timeout(30)  # 80 nested layout tables (1.2 KB) took 42 s and copied their text 4,050 times
def test_nested_layout_tables_are_flattened_once() -> None:
    page = extract_page("<table><tr><td>" * 80 + "<ul><li>deep text</li></ul>", URL)
    assert page.markdown.count("deep text") == 1


def test_pages_within_the_limit_are_untouched() -> None:
    shallow = "<html><body>" + "<div>" * (MAX_DEPTH - 5) + "x" + "</div>" * (MAX_DEPTH - 5) + "</body></html>"
    assert limit_nesting(shallow) is shallow
    sloppy = "<body>" + "<p>para <b>bold <li>item <span>x" * 2000 + "</body>"  # unclosed tags that do not nest
    assert limit_nesting(sloppy) == sloppy
    if DOCS.is_dir():
        for path in sorted(DOCS.glob("library/*.html"))[:40]:
            text = path.read_text(encoding="utf-8")
            assert limit_nesting(text) is text


def test_markup_tricks_do_not_hide_depth() -> None:
    """Tags inside comments, attribute values, scripts and titles are not tags; the guard reads them the same way."""
    n = 20_000
    for html in (
        "<div><!--</div>-->" * n,
        '<div title="</div>">' * n,
        "<div><script></div></script>" * n,
        "<div><textarea></div></textarea>" * n,
        "<b><div></b>" * n,
        "<a href=x><div>" * n,
        "<div/>" * n,
    ):
        assert _tree_depth(limit_nesting(html)) <= 2 * MAX_DEPTH, html[:40]


# --- 1b. time limit ------------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_extraction_time_limit_stops_the_worker() -> None:
    big = "<main><h1>Big</h1>" + "<p>words and more words</p>" * 50_000 + "</main>"
    with pytest.raises(ExtractError, match=r"took longer than 0\.01 s \(EXTRACT_TIMEOUT_S\)"):
        extract_isolated(big, URL, 0.01)
    page, links = extract_isolated('<h1>After</h1><p>next page <a href="/b">b</a></p>', URL, 60)
    assert page.title == "After" and links == ("https://example.com/b",)


def test_worker_reports_extract_errors_and_matches_in_process_results() -> None:
    with pytest.raises(ExtractError, match="no readable text content"):
        extract_isolated("<html><body><nav>menu</nav></body></html>", URL, 60)
    html = '<main><h1 id="t">Title</h1><p>Text with <a href="/x">a link</a>.</p><pre>code</pre></main>'
    assert extract_isolated(html, URL, 60) == extract_with_links(html, URL)


def test_workers_of_a_large_server_process_are_reused() -> None:
    """A worker's own peak decides its replacement, not the parent's (Linux carries ru_maxrss over fork and exec)."""
    psutil = pytest.importorskip("psutil")
    ballast = bytearray(MAX_WORKER_RSS + 64 * 2**20)  # this process is now larger than a worker may grow
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    extract_worker._POOL.close()  # the next workers start from this large process

    def worker_pids() -> frozenset[int]:
        module = "mcp_web_ingest.ingest.extract_worker"
        return frozenset(c.pid for c in psutil.Process().children() if module in " ".join(c.cmdline()))

    seen = []
    for i in range(4):  # sequential small pages: one worker serves them all
        extract_isolated(f"<h1>Page {i}</h1><p>text</p>", URL, 60)
        seen.append(worker_pids())
    assert seen[0] and all(pids == seen[0] for pids in seen), "a worker was replaced after a small page"
    del ballast


# --- 2. links per page -----------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_links_per_page_are_capped() -> None:
    n = 3 * MAX_LINKS
    body = "<main><h1>Links</h1><p>" + "".join(f'<a href="/p{i}">word{i}</a> ' for i in range(n)) + "</p></main>"
    page, links = extract_with_links(body, URL)
    assert len(links) == MAX_LINKS
    assert links[0] == "https://example.com/p0" and links[-1] == f"https://example.com/p{MAX_LINKS - 1}"
    assert page.markdown.count("](") == MAX_LINKS
    assert f"word{n - 1}" in page.markdown  # links past the cap keep their text


# --- 3. script links, invisible characters -----------------------------------------------------------------------

_SCRIPT_LINKS = [
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href="java&#x09;script:alert(1)">click</a>',
    '<a href="java&#x0A;script:alert(1)">click</a>',
    '<a href="java&#x0D;script:alert(1)">click</a>',
    '<a href="   javascript:alert(1)">click</a>',
    '<a href="&#x01;&#x1f; javascript:alert(1)">click</a>',
    '<a href="vbscript:msgbox(1)">click</a>',
    '<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">click</a>',
    '<a href="&#106;avascript:alert(1)">click</a>',
    '<a href="javascript&colon;alert(1)">click</a>',
    '<a href="jav&#x61;script&#x3a;alert(1)">click</a>',
    '<p>click <img alt="pic" src="javascript:alert(1)"></p>',
    '<p>click <img alt="pic" src="data:image/svg+xml,&lt;svg onload=alert(1)&gt;"></p>',
    '<a href="javascript:alert(1)"><img alt="click" src="x.png"></a>',
    '<a href="https://example.com/ok"><img alt="[click](javascript:alert(1))" src="x.png"></a>',
    '<p><img alt="click](javascript:alert(1)) [x" src="x.png"></p>',
    "<p>[click](javascript:alert(1))</p>",
    "<p>[click](<java\tscript:alert(1)>)</p>",
    "<p>[click](jav&amp;#x61;script:alert(1))</p>",
    "<p>[click]<b></b>(javascript:alert(1))</p>",
    "<p>click</p><p>[x]: javascript:alert(1)</p><p>[x]</p>",
    "<p>click &lt;javascript:alert(1)&gt;</p>",
    "<p>click &lt;img src=x onerror=alert(1)&gt; &lt;script&gt;alert(1)&lt;/script&gt;</p>",
    "<p>click &lt;<a href='https://example.com/'>script</a>&gt;alert(1)</p>",
    "<p>click <code>a</code>` &lt;script&gt;alert(1)&lt;/script&gt; `<br>` x</p>",
]


@pytest.mark.parametrize("body", _SCRIPT_LINKS)
def test_script_links_never_reach_markdown(body: str) -> None:
    page = _page(f"<main><h1>Title</h1>{body}<p>Safe <a href='/ok'>link</a>.</p></main>")
    _assert_inert(page)
    assert "click" in page.markdown or "pic" in page.markdown  # the text stays, only the target goes
    assert "[link](https://example.com/ok)" in page.markdown


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "java\rscript:alert(1)",
        " \x01\x1fjavascript:alert(1)",
        "vbscript:x",
        "data:text/html,x",
        "file:///etc/passwd",
        "localhost:8080/x",
    ],
)
def test_safe_url_drops_other_schemes(url: str) -> None:
    assert safe_url(url) is None
    assert safe_url(url, URL) is None


def test_safe_url_keeps_web_links_and_escapes_markup() -> None:
    assert safe_url("/a b", URL) == "https://example.com/a%20b"
    assert safe_url("#frag", URL) == URL + "#frag"
    assert safe_url("//cdn.example.org/x", URL) == "https://cdn.example.org/x"
    assert safe_url("mailto:a@example.com") == "mailto:a@example.com"
    assert safe_url('https://e.com/a(b)"><script>') == "https://e.com/a%28b%29%22%3E%3Cscript%3E"
    assert safe_url("https://e.com/\u202ex", escape=False) == "https://e.com/\u202ex"  # compared, never shown


_HIDDEN = "in\u202evisible\u2066 zero\u200bwidth\ufeff join\u2060ed \U000e0041tag"


def test_bidi_and_zero_width_characters_are_removed() -> None:
    page = _page(
        f"<main><h1>Head\u202eline</h1><h2 id='sec\u200btion'>Sec\u2067tion</h2><p>{_HIDDEN}</p>"
        "<p>family 👨\u200d👩\u200d👧 and می\u200cخواهم and pass\u200dword</p>"
        f"<pre>code\u202e = 1</pre><img alt='a\u200bb' src='/i.png'></main>",
        head="<title>Ti\u202etle</title><meta name=description content='de\u200bsc'>",
    )
    fields = [page.title, page.description or "", page.markdown]
    for s in page.sections:
        fields += [s.heading, s.anchor or "", s.markdown, *s.path]
    for c in chunk_page(page):
        fields += [c.text, *c.section_path]
    for field in fields:
        assert not _INVISIBLE.search(field), repr(field)
    assert page.title == "Headline" and page.sections[1].heading == "Section" and page.sections[1].anchor == "section"
    assert "invisible zerowidth joined tag" in page.markdown
    assert "👨\u200d👩\u200d👧" in page.markdown and "می\u200cخواهم" in page.markdown  # emoji and Persian keep joiners
    assert "password" in page.markdown and "code = 1" in page.markdown


def test_title_sources_are_cleaned() -> None:
    assert _page("<p>x</p>", head="<title>A\u202eB\u200b - Site</title>").title == "AB"
    assert _page("<p>x</p>", head="<meta property='og:title' content='O\u2066G'>").title == "OG"


@pytest.mark.parametrize(
    ("heading_id", "anchor"),
    [
        ('x" onmouseover="alert(1)', "x%22%20onmouseover=%22alert%281%29"),
        ("javascript:alert(1)", "javascript:alert%281%29"),
        ("a<b>c", "a%3Cb%3Ec"),
        ("plain-id.1", "plain-id.1"),
    ],
)
def test_heading_anchors_are_inert(heading_id: str, anchor: str) -> None:
    page = _page(f"<main><h1>T</h1><h2 id='{html_lib.escape(heading_id, quote=True)}'>Part</h2><p>text</p></main>")
    assert page.sections[1].anchor == anchor
    assert safe_fragment(heading_id) == anchor


def test_base_and_canonical_must_be_web_urls() -> None:
    page = _page(
        "<main><h1>T</h1><p><a href='rel'>rel</a></p></main>",
        head="<base href='javascript:alert(1)//'><link rel=canonical href='javascript:alert(1)'>",
    )
    assert "[rel](https://example.com/docs/rel)" in page.markdown
    assert page.canonical_url is None


def test_clean_markdown_keeps_code_and_is_idempotent() -> None:
    md = (
        "Text <b>x</b> and `<code>` and [a](javascript:x) [b](https://e.com/b)\n\n"
        "```html\n<script>kept()</script> [c](javascript:x)\n```\n\n"
        "    ```\n<script>not code: the fence is indented and the lines are not</script>\n    ```"
    )
    cleaned = clean_markdown(md)
    assert "&lt;b>x&lt;/b>" in cleaned and "`<code>`" in cleaned
    assert "[a] [b](https://e.com/b)" in cleaned
    assert "```html\n<script>kept()</script> [c](javascript:x)\n```" in cleaned
    assert "&lt;script>not code" in cleaned
    assert clean_markdown(cleaned) == cleaned


def test_chunk_link_stripping_reaches_nested_images() -> None:
    assert strip_link_targets("[![logo](https://e.com/l.png)](https://e.com/) end") == "logo end"


def test_clean_text_strips_controls_and_keeps_text() -> None:
    assert clean_text("a\x00b\x1b[31mc\x7f\x85d") == "ab[31mcd"
    assert clean_text("naïve café – ok") == "naïve café – ok"
