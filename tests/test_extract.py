"""Tests for HTML → markdown section extraction, on synthetic pages and on the Debian Python docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.chunking import chunk_page
from mcp_web_ingest.ingest.extract import extract_page
from mcp_web_ingest.models import ExtractedPage

DOCS = Path("/usr/share/doc/python3.11/html")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language tag, code) of every fenced block, fences indented by list nesting included."""
    blocks: list[tuple[str, str]] = []
    fence, lang, body = None, "", []
    for line in markdown.split("\n"):
        m = _FENCE.match(line)
        if fence is None and m:
            fence, lang, body = m.group(1), m.group(2).strip(), []
        elif fence is not None and m and set(line.strip()) == {fence[0]} and len(line.strip()) >= len(fence):
            blocks.append((lang, "\n".join(body)))
            fence = None
        elif fence is not None:
            body.append(line)
    return blocks


def _page(body: str, head: str = "", url: str = "https://example.com/docs/page.html") -> ExtractedPage:
    return extract_page(f"<!doctype html><html><head>{head}</head><body>{body}</body></html>", url)


def test_main_content_without_navigation_or_footer() -> None:
    page = _page(
        """<header><a href="/">Site logo</a><nav><a href="/a">Home</a><a href="/b">Blog</a></nav></header>
        <a href="#main" class="skip">Skip to content</a>
        <main id="main"><h1>Real Title</h1><p>First paragraph with <a href="../other.html">a link</a>.</p>
        <h2 id="details">Details</h2><p>More <em>text</em> and <code>inline_code</code>.</p>
        <ul><li>one</li><li>two</li></ul></main>
        <aside><h3>Related posts</h3></aside><footer>Copyright 2024</footer>
        <script>var x = 1;</script>""",
        head="<title>Real Title | My Site</title>",
    )
    md = page.markdown
    assert page.title == "Real Title"
    for noise in ("Site logo", "Home", "Blog", "Skip to content", "Related posts", "Copyright", "var x"):
        assert noise not in md
    assert "[a link](https://example.com/other.html)" in md
    assert "*text*" in md and "`inline_code`" in md
    assert "- one\n- two" in md
    assert [(s.level, s.heading, s.anchor, s.path) for s in page.sections] == [
        (1, "Real Title", None, ()),
        (2, "Details", "details", ("Details",)),
    ]


def test_article_header_with_h1_is_kept() -> None:
    page = _page("<header>Chrome</header><article><header><h1>Post</h1></header><p>Body text.</p></article>")
    assert page.title == "Post"
    assert "Chrome" not in page.markdown


def test_language_classes_and_verbatim_code() -> None:
    code = "const a = b * c_d;\n\n  if (x < 1) { return `t`; }  // **not bold** _x_"
    page = _page(
        f"""<main><p>JS:</p><pre><code class="language-js">{code.replace("<", "&lt;")}</code></pre>
        <pre class="lang-rust">fn main() {{}}</pre>
        <div class="highlight-python3"><div class="highlight"><pre>print(1)</pre></div></div>
        <div class="highlight-pycon"><div class="highlight"><pre>&gt;&gt;&gt; 1 + 1\n2</pre></div></div>
        <div class="highlight-default"><div class="highlight"><pre>x = 1</pre></div></div>
        <div class="highlight-none"><div class="highlight"><pre>plain</pre></div></div>
        <pre>no language</pre>
        <pre><code class="language-markdown">```python\nx\n```</code></pre></main>"""
    )
    blocks = fenced_blocks(page.markdown)
    assert blocks[0] == ("js", code)
    assert [lang for lang, _ in blocks] == ["js", "rust", "python", "pycon", "python", "", "", "markdown"]
    assert blocks[3][1] == ">>> 1 + 1\n2"
    assert "````markdown\n```python\nx\n```\n````" in page.markdown  # a longer fence wraps inner fences


def test_page_without_headings_and_metadata() -> None:
    page = _page(
        "<div><p>Just a paragraph of text.</p><p>And another.</p></div>",
        head="""<title>Plain page - Example</title><meta name="description" content="  A  plain page. ">
        <link rel="canonical" href="/canonical/plain">""",
    )
    assert page.title == "Plain page"
    assert page.description == "A plain page."
    assert page.canonical_url == "https://example.com/canonical/plain"
    assert len(page.sections) == 1
    assert page.sections[0].level == 0 and page.sections[0].anchor is None and page.sections[0].path == ()
    assert page.sections[0].markdown == "Just a paragraph of text.\n\nAnd another."


@pytest.mark.parametrize(
    ("head", "body", "title"),
    [
        ("<title>json — JSON encoder — Python 3.11.7 documentation</title>", "<p>x</p>", "json — JSON encoder"),
        ("<title>Page</title><meta property='og:title' content='OG Title'>", "<p>x</p>", "OG Title"),
        ("<title>Tab | Site</title>", "<main><h1> The <code>H1</code> ¶</h1><p>x</p></main>", "The H1"),
        ("", "<p>x</p>", "/docs/page.html"),
    ],
)
def test_title_rules(head: str, body: str, title: str) -> None:
    assert _page(body, head=head).title == title


@pytest.mark.parametrize(
    "html",
    ["", "   ", "<html><body></body></html>", "<html><body><nav>Menu</nav><script>x()</script></body></html>"],
)
def test_empty_page_raises(html: str) -> None:
    with pytest.raises(ExtractError, match="no readable text content"):
        extract_page(html, "https://example.com/empty")


@pytest.mark.parametrize(
    "html",
    [
        "<html><body>" + "<div>" * 5000 + "<h2 id='deep'>Deep</h2><p>Deep text</p><pre>code</pre>" + "</div>" * 5000,
        "<main><h1>T</h1>" + "<ul><li>" * 3000 + "deep item" + "</li></ul>" * 3000 + "</main>",
        "<p>" + "<b>" * 10000 + "bold text",
    ],
)
def test_deep_nesting_does_not_crash(html: str) -> None:
    page = extract_page(html, "https://example.com/deep")
    assert "text" in page.markdown or "deep item" in page.markdown


def test_broken_html_does_not_crash() -> None:
    page = extract_page("<html><body><p>Unclosed <b>bold <i>both</p><table><tr><td>cell</div></table>", "http://e.com")
    assert "Unclosed" in page.markdown and "cell" in page.markdown


def test_non_ascii_page() -> None:
    page = extract_page(
        '<html lang="de-DE"><body><main><h1>Überblick — 概要</h1><p>Grüße aus Köln. 日本語のテキスト。 🎉</p>'
        '<h2 id="café">Café ☕</h2><pre class="language-python">print("héllo wörld")</pre></main></body></html>',
        "https://example.com/ü",
    )
    assert page.title == "Überblick — 概要"
    assert page.language == "de-DE"
    assert "Grüße aus Köln. 日本語のテキスト。 🎉" in page.markdown
    assert page.sections[1].anchor == "café" and page.sections[1].heading == "Café ☕"
    assert fenced_blocks(page.markdown) == [("python", 'print("héllo wörld")')]


def test_sphinx_structure_anchors_signatures_tables() -> None:
    page = _page(
        """<div class="sphinxsidebar"><h3>Table of Contents</h3><h4>Previous topic</h4></div>
        <div class="related"><a href="x.html">next</a></div>
        <div class="body" role="main"><section id="mod-top"><span id="alias"></span>
        <h1>mod — Module<a class="headerlink" href="#mod-top">¶</a></h1><p>Intro.</p>
        <section id="usage"><h2>Usage<a class="headerlink" href="#usage">¶</a></h2>
        <dl class="py function"><dt class="sig sig-object py" id="mod.run">
        <span class="sig-prename">mod.</span><span class="sig-name">run</span>(<em>x</em>, <em>*</em>, <em>y=1</em>)
        <a class="headerlink" href="#mod.run">¶</a></dt><dd><p>Run <em>x</em>.</p>
        <div class="highlight-python3"><div class="highlight"><pre>run(1)</pre></div></div></dd></dl>
        <h3><a name="legacy"></a>Legacy</h3><p>Old.</p>
        <h3>Linked<a class="headerlink" href="#from-headerlink">¶</a></h3><p>L.</p>
        <table class="docutils"><thead><tr><th><p>JSON</p></th><th><p>Python</p></th></tr></thead>
        <tbody><tr><td><p>object</p></td><td><p>dict</p></td></tr></tbody></table>
        </section></section></div>"""
    )
    md = page.markdown
    assert "¶" not in md and "Table of Contents" not in md and "Previous topic" not in md and "next" not in md
    assert [(s.heading, s.anchor, s.path) for s in page.sections] == [
        ("mod — Module", "mod-top", ()),
        ("Usage", "usage", ("Usage",)),
        ("Legacy", "legacy", ("Usage", "Legacy")),
        ("Linked", "from-headerlink", ("Usage", "Linked")),
    ]
    assert "`mod.run(x, *, y=1)`" in md
    assert fenced_blocks(md) == [("python", "run(1)")]
    assert "| JSON | Python |\n| --- | --- |\n| object | dict |" in md


def test_layout_table_cells_become_blocks() -> None:
    page = _page("<main><table><tr><td><ul><li>alpha</li></ul></td><td><pre>code\nlines</pre></td></tr></table></main>")
    assert "- alpha" in page.markdown
    assert fenced_blocks(page.markdown) == [("", "code\nlines")]


# --- the Debian Python 3.11 docs (package python3.11-doc; CI installs it) ---

_REAL_PAGES = {
    "library/asyncio-task.html": "running-tasks-concurrently",
    "library/json.html": "basic-usage",
    "library/itertools.html": "itertools-recipes",
}


@pytest.fixture(scope="module")
def real_pages() -> dict[str, tuple[str, ExtractedPage]]:
    if not DOCS.is_dir():
        pytest.skip(f"{DOCS} is missing: install the python3.11-doc package to run the real-page tests")
    out = {}
    for name in _REAL_PAGES:
        html = (DOCS / name).read_text(encoding="utf-8")
        out[name] = (html, extract_page(html, f"https://docs.python.org/3.11/{name}"))
    return out


@pytest.mark.parametrize("name", sorted(_REAL_PAGES))
def test_real_page_keeps_every_code_block(name: str, real_pages) -> None:
    html, page = real_pages[name]
    n_pre = len(re.findall(r"<pre[\s>]", html))
    blocks = fenced_blocks(page.markdown)
    assert n_pre > 10
    assert len(blocks) == n_pre
    assert all(code.strip() for _, code in blocks)
    assert {lang for lang, _ in blocks} <= {"python", "pycon", "shell-session", ""}


@pytest.mark.parametrize("name", sorted(_REAL_PAGES))
def test_real_page_sections_and_no_chrome(name: str, real_pages) -> None:
    _, page = real_pages[name]
    md = page.markdown
    for noise in ("Table of Contents", "Previous topic", "Next topic", "This Page", "Quick search", "¶"):
        assert noise not in md, noise
    anchors = {s.anchor for s in page.sections}
    assert _REAL_PAGES[name] in anchors
    assert all(s.anchor for s in page.sections if s.level > 0)
    assert page.sections[0].level == 1 and page.sections[0].heading == page.title
    assert page.language == "en"
    for s in page.sections:
        assert "](" not in s.heading and "¶" not in s.heading
    chunks = chunk_page(page)
    assert chunks and all(c.token_count <= 256 for c in chunks)


def test_real_page_asyncio_content(real_pages) -> None:
    _, page = real_pages["library/asyncio-task.html"]
    section = next(s for s in page.sections if s.anchor == "running-tasks-concurrently")
    assert section.path == ("Running Tasks Concurrently",)
    assert "asyncio.gather(*aws, return_exceptions=False)" in section.markdown
    assert "```python\nimport asyncio\n\nasync def factorial(name, number):" in section.markdown


_SITE_CHROME = """<!DOCTYPE html><html><head><title>Writing custom commands — Example 3.2 documentation</title></head>
<body><div class="document"><div id="custom-doc">
  <div id="hd">
    <h1><a href="../index.html">Example 3.2 documentation</a></h1>
    <div id="global-nav"><a href="../index.html">Home</a> | <a href="../contents.html">Table of contents</a> |
      <a href="../genindex.html">Index</a></div>
    <div class="nav">&laquo; <a href="prev.html">previous</a> | <a href="index.html">up</a> |
      <a href="next.html">next</a> &raquo;</div>
  </div>
  <div id="bd"><div class="yui-g">
    <h1 id="writing-custom-commands">Writing custom commands</h1>
    <p>Applications can register their own actions with the command line tool.</p>
    <div class="see-also">Functions on this page: <a href="#run">run()</a>, <a href="#stop">stop()</a></div>
    <h2 id="run">Running a command</h2><p>Call run with the command name.</p>
  </div></div>
  <div id="ft"><div class="nav">&laquo; <a href="prev.html">previous</a> | <a href="index.html">up</a> |
    <a href="next.html">next</a> &raquo;</div></div>
</div></div></body></html>"""


def test_site_chrome_without_tags_is_dropped() -> None:
    """A logo heading that only links home is not the title, and bars of links to other pages are not content."""
    page = extract_page(_SITE_CHROME, "http://docs.test/howto/commands.html")
    assert page.title == "Writing custom commands"
    text = "\n".join(s.markdown for s in page.sections)
    assert "previous" not in text and "Table of contents" not in text and "Example 3.2 documentation" not in text
    assert "register their own actions" in text and "Call run with the command name" in text
    assert "run()" in text  # a bar of links within the page is content
    chunks = chunk_page(page)
    assert all(c.section_path[0] == "Writing custom commands" for c in chunks)


def test_code_blocks_are_verbatim_text_even_with_markup_inside() -> None:
    # Sphinx grammar productions link every token inside the <pre>; a fence must not hold markdown links.
    page = _page(
        "<main><h1>Grammar</h1><pre class='highlight-none'>atom ::= <a href='/id'>identifier</a> | "
        "<strong>literal</strong>\n  | &lt;enclosure&gt;</pre></main>"
    )
    [(_, code)] = fenced_blocks(page.sections[0].markdown)
    assert code == "atom ::= identifier | literal\n  | <enclosure>"


def test_marker_words_in_page_text_stay_text() -> None:
    # Headings travel through the converter as marker words; text that looks like one must not become a heading.
    page = _page("<main><h1>Title</h1><p>wi0123456789abm0x and ## wiffffffffffffm1x</p><h2>Next</h2><p>b</p></main>")
    assert [s.heading for s in page.sections] == ["Title", "Next"]
    assert "wi0123456789abm0x and ## wiffffffffffffm1x" in page.sections[0].markdown


def test_wide_tables_are_not_padded() -> None:
    long = "x" * 300
    page = _page(
        f"<main><h1>T</h1><table><tr><th>Name</th><th>Value</th></tr><tr><td>{long}</td><td>1</td></tr>"
        "<tr><td>b</td><td>2</td></tr></table></main>"
    )
    lines = page.sections[0].markdown.splitlines()
    assert "| Name | Value |" in lines and "| b | 2 |" in lines  # not padded to the 300-character column


def test_definition_terms_signatures_as_code_others_bold() -> None:
    page = _page(
        "<main><h1>API</h1><dl><dt class='sig sig-object py'>json.<em>dump</em>(obj, fp)</dt><dd>Write.</dd>"
        "<dt>glossary term</dt><dd>Meaning.</dd></dl></main>"
    )
    md = page.sections[0].markdown
    assert "`json.dump(obj, fp)`" in md and "**glossary term**" in md
