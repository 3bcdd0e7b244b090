"""HTML page → main-content markdown split into heading sections (selectolax to clean, html-to-markdown to convert).

Pipeline: strip control characters, cut nesting deeper than html_guard.MAX_DEPTH, parse with lexbor, read
metadata, tag every heading with its anchor and every ``<pre>`` with its language (while Sphinx ``.headerlink``
and wrapper classes are still there), drop boilerplate, pick the main-content node, make links absolute (through
sanitize.safe_url, the one URL allow-list), keep html_guard.MAX_LINKS links, convert that node on the same tree
(markdown.node_markdown: sentinel lines for headings), split the markdown on the sentinels into ``Section``
objects, and pass every section through sanitize.clean_markdown.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.chrome import drop_site_chrome
from mcp_web_ingest.ingest.html_guard import MAX_LINKS, limit_nesting
from mcp_web_ingest.ingest.markdown import MARK, clean_heading, node_markdown
from mcp_web_ingest.ingest.markers import HEADINGS, code_language, heading_anchor
from mcp_web_ingest.ingest.sanitize import WEB_SCHEMES, clean_markdown, safe_fragment, safe_url
from mcp_web_ingest.models import ExtractedPage, Section

__all__ = ["extract_page", "extract_tree", "parse_html"]

# Markup that is never main content. `header` and `[role=banner]` are handled apart (see _drop_boilerplate).
_DROP_SELECTOR = ", ".join(
    [
        "script, style, noscript, template, svg, nav, footer, form, button, iframe, object, embed, canvas",
        "input, select, textarea, dialog, [hidden], [role=navigation], [role=search], [role=contentinfo]",
        "[aria-hidden=true], .headerlink, .sphinxsidebar, .related, .footer, .breadcrumb, .breadcrumbs",
        "[aria-label=breadcrumb], [aria-label=breadcrumbs], .skip-link, .skip-to-content, #skip-to-content",
        ".cookie-banner, .cookie-consent, .cookie-notice, #cookie-banner, #cookie-consent, #cookie-notice",
        "[id^=onetrust], #CybotCookiebotDialog, span.linenos, td.linenos, div.linenodiv",
    ]
)
# Main-content candidates, most specific first; the first one holding enough of the page's text wins.
_MAIN_CANDIDATES = (
    "main",
    "[role=main]",
    "article",
    "div.body",
    "div[role=main]",
    "#content",
    ".content",
    ".md-content",
    ".document",
)
_MAIN_MIN_SHARE = 0.3  # a candidate with less than this share of the body's text is a widget, not the content
_LAYOUT_CELL_CONTENT = "pre, ul, ol, dl, table, blockquote, h1, h2, h3, h4, h5, h6"
_TITLE_SUFFIX = re.compile(r"\s+[—–|·-]\s+[^—–|·]+$")  # " — Python 3.11 documentation", " | Site", " - Site"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_WS = re.compile(r"\s+")
_MAX_TITLE = 300


def _meta(tree: LexborHTMLParser, selector: str, attr: str = "content") -> str | None:
    node = tree.css_first(selector)
    value = node.attributes.get(attr) if node is not None else None
    value = clean_heading(value) if value else ""
    return value or None


def _is_inside(node: LexborNode, tags: tuple[str, ...]) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in tags:
            return True
        parent = parent.parent
    return False


def _drop_boilerplate(root: LexborNode) -> None:
    for node in root.css(_DROP_SELECTOR):
        node.decompose()
    # A page-level <header> is site chrome, but an <article>'s own <header> usually holds its h1 and byline.
    for node in root.css("header, [role=banner]"):
        if not _is_inside(node, ("main", "article")):
            node.decompose()
    # <aside> is a site sidebar, except docutils' footnotes and "sidebar" directive, which are content
    # (code examples sit in both on the Python docs: turtle.html, c-api/typeobj.html).
    for node in root.css("aside"):
        classes = (node.attributes.get("class") or "").split()
        if not any(c.startswith("footnote") for c in classes) and node.css_first(".sidebar-title") is None:
            node.decompose()
    for node in root.css("a[href^='#']"):
        if clean_heading(node.text()).lower().startswith(("skip to", "jump to", "skip navigation")):
            node.decompose()
    for node in root.css("a"):  # permalink markers outside Sphinx (mkdocs, hugo) are bare pilcrow links
        if node.text(strip=True) in ("¶", "#", "§"):
            node.decompose()
    drop_site_chrome(root)


def _text_len(node: LexborNode) -> int:
    return len(_WS.sub("", node.text(separator=" ")))


def _main_node(body: LexborNode) -> LexborNode:
    total = _text_len(body)
    for selector in _MAIN_CANDIDATES:
        best, best_len = None, -1
        for node in body.css(selector):
            n = _text_len(node)
            if n > best_len:
                best, best_len = node, n
        if best is not None and best_len > 0 and best_len >= _MAIN_MIN_SHARE * total:
            return best
    return body


def _has_descendant(node: LexborNode, selector: str) -> bool:
    """Whether a descendant matches; lexbor's ``css`` also matches the node itself, which must not count."""
    return any(match.mem_id != node.mem_id for match in node.css(selector))


def _own_cells(table: LexborNode) -> list[LexborNode]:
    """The table's cells, without those of tables nested in them (taking those too copied them once per level)."""
    cells = []
    for cell in table.css("td, th"):
        parent = cell.parent
        while parent is not None and parent.tag != "table":
            parent = parent.parent
        if parent is not None and parent.mem_id == table.mem_id:
            cells.append(cell)
    return cells


def _unwrap_layout_tables(main: LexborNode) -> None:
    """Turn tables used for layout (cells holding lists, code, headings...) into plain blocks, one per cell.

    A markdown table row is one line, so such cells would collapse into a single huge, unsplittable row and
    their code blocks would lose their line breaks (Sphinx's genindex pages, Pygments line-number tables).
    """
    for _ in range(1000):  # each pass replaces the first layout table left; nested ones surface in later passes
        for table in main.css("table"):
            if _has_descendant(table, _LAYOUT_CELL_CONTENT):
                cells = "".join(f"<div>{cell.inner_html or ''}</div>" for cell in _own_cells(table))
                replacement = LexborHTMLParser(f"<div>{cells}</div>").css_first("div")
                if replacement is None:
                    table.decompose()
                else:
                    table.replace_with(replacement)
                break
        else:
            return


def _prepare(main: LexborNode, base: str) -> None:
    """Make link and image targets absolute; unwrap layout tables and structural blockquotes."""
    _unwrap_layout_tables(main)
    # reST indentation becomes <blockquote>; quoting whole sections would prefix every line (code too) with "> ".
    for quote in main.css("blockquote"):
        if _has_descendant(quote, _LAYOUT_CELL_CONTENT):
            quote.unwrap()
    links = 0
    for a in main.css("a"):
        href = safe_url(a.attributes.get("href"), base) if links < MAX_LINKS else None
        if href is None:
            a.unwrap()  # its text stays; past MAX_LINKS this keeps a page of 750k links from a 2 GB conversion
        else:
            a.attrs["href"] = href
            links += 1
    for img in main.css("img[src]"):
        src = safe_url(img.attributes.get("src"), base)
        if src is None:
            del img.attrs["src"]
        else:
            img.attrs["src"] = src


def _tidy(markdown: str) -> str:
    """Trim and squeeze runs of blank lines outside fenced code (code keeps its blank lines verbatim)."""
    out: list[str] = []
    fence: str | None = None
    blank = 0
    for line in markdown.strip("\n").split("\n"):
        m = _FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
            if not line.strip():
                blank += 1
                if blank > 1:
                    continue
                line = ""
            else:
                blank = 0
                line = line.rstrip() if not line.endswith("  ") else line
        elif m and line.strip() == fence[0] * len(line.strip()) and len(line.strip()) >= len(fence):
            fence = None
            blank = 0
        out.append(line)
    return "\n".join(out).strip()


def _title(tree: LexborHTMLParser, main: LexborNode, url: str) -> str:
    h1 = main.css_first("h1")
    text = clean_heading(h1.text(separator=" ")) if h1 is not None else ""
    if text and len(text) <= _MAX_TITLE:
        return text
    og = _meta(tree, "meta[property='og:title']")
    if og:
        return og[:_MAX_TITLE]
    node = tree.css_first("title")
    title = clean_heading(node.text()) if node is not None else ""
    if title:
        stripped = _TITLE_SUFFIX.sub("", title)
        return (stripped or title)[:_MAX_TITLE]
    parts = urlsplit(url)
    return (parts.path.rstrip("/") or parts.netloc or url)[:_MAX_TITLE]


def _sections(markdown: str, title: str) -> tuple[Section, ...]:
    """Split sentinel-marked markdown into sections; the path is the heading stack minus a leading page title."""
    pieces = MARK.split(markdown)
    sections: list[Section] = []
    intro = clean_markdown(_tidy(pieces[0]))
    if intro:
        sections.append(Section(level=0, heading="", anchor=None, markdown=intro, path=()))
    stack: list[tuple[int, str]] = []
    for i in range(1, len(pieces), 4):
        level, anchor, heading, body = int(pieces[i]), pieces[i + 1] or None, pieces[i + 2], pieces[i + 3]
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
        path = tuple(h for _, h in stack)
        if path[0] == title:  # the chunker prepends the title; do not repeat it
            path = path[1:]
        markdown = clean_markdown(_tidy(body))
        sections.append(Section(level=level, heading=heading, anchor=anchor, markdown=markdown, path=path))
    return tuple(sections)


def parse_html(html: str) -> LexborHTMLParser:
    """The page's tree: control characters stripped and nesting cut to html_guard.MAX_DEPTH before parsing."""
    return LexborHTMLParser(limit_nesting(_CONTROL.sub("", html or "")))


def extract_page(html: str, url: str) -> ExtractedPage:
    """extract_tree of the parsed page."""
    return extract_tree(parse_html(html), url)


def extract_tree(tree: LexborHTMLParser, url: str) -> ExtractedPage:
    """Extract the main content of an HTML page as markdown sections split at h1–h6, with title and metadata.

    Title: the main content's first h1, else og:title, else <title> minus a site suffix, else the URL path.
    Section.path: the headings from the top down to the section, without a top heading equal to the title
    (normally the h1 the title came from), so the h1's own section has path ``()``.
    Raises ExtractError when no readable text is left. The tree is changed in the process.
    """
    base_node = tree.css_first("base[href]")
    base_href = base_node.attributes.get("href") if base_node is not None else None
    base = safe_url(base_href, url, WEB_SCHEMES, escape=False) or url
    canonical = _meta(tree, "link[rel~=canonical]", "href")
    twin = _meta(
        tree, "link[rel~=alternate][type='text/markdown'], link[rel~=alternate][type='text/x-markdown']", "href"
    )
    html_node = tree.css_first("html")
    language = (html_node.attributes.get("lang") or "").strip() or None if html_node is not None else None
    description = _meta(tree, "meta[name=description]") or _meta(tree, "meta[property='og:description']")

    # Anchors and languages first: they read markers (headerlink, highlight-x wrappers) that cleaning removes.
    for h in tree.css(HEADINGS):
        anchor = safe_fragment(heading_anchor(h))
        if anchor:
            h.attrs["data-wi-anchor"] = anchor
    for pre in tree.css("pre"):
        lang = code_language(pre)
        if lang:
            pre.attrs["data-wi-lang"] = lang

    body = tree.body or tree.root
    if body is None:
        raise ExtractError(f"The page at {url} has no readable text content (empty document).")
    _drop_boilerplate(body)
    main = _main_node(body)
    _prepare(main, base)
    title = _title(tree, main, url)
    sections = _sections(node_markdown(main), title)
    if not any(s.markdown.strip() or s.heading.strip() for s in sections):
        raise ExtractError(
            f"The page at {url} has no readable text content after removing navigation and scripts; "
            "it may be rendered by JavaScript or be an empty page."
        )
    return ExtractedPage(
        title=title,
        sections=sections,
        canonical_url=safe_url(canonical, url, WEB_SCHEMES, escape=False),
        language=language,
        description=description,
        markdown_twin=safe_url(twin, base, WEB_SCHEMES, escape=False),
    )
