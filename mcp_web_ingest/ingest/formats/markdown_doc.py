"""Markdown (and MDX) documents → heading sections, parsed by markdown-it-py so fences and setext headings count.

The source is kept as written: code blocks stay byte for byte (indented ones become fenced so that chunking keeps
them whole), HTML comments and front matter go, relative links become absolute. Heading anchors are the ids a site
renders: an explicit ``{#id}`` or ``<a id>``, else the GitHub slug of the heading text (also what Docusaurus,
MkDocs and the Node.js docs produce) or, for notebooks, Jupyter's.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.links import absolute_url
from mcp_web_ingest.ingest.markdown import clean_heading
from mcp_web_ingest.ingest.sanitize import clean_markdown, safe_fragment, safe_url
from mcp_web_ingest.models import ExtractedPage, Section

__all__ = [
    "MAX_LINE_CHARS",
    "MarkdownDocument",
    "check_line_lengths",
    "extract_markdown",
    "github_slug",
    "jupyter_slug",
    "url_file_title",
]

MAX_LINE_CHARS = 200_000  # a longer line is generated data (minified, base64), not a document to read
_PARSER = MarkdownIt("commonmark", {"html": True}).enable("table")
_FRONT_MATTER = re.compile(r"\A(?:\ufeff)?---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FRONT_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.M)
_EXPLICIT_ID = re.compile(r"\s*\{#([^\s{}]+)\}\s*$")
_HTML_ID = re.compile(r"""<a\s[^>]*?(?:id|name)\s*=\s*["']([^"']+)["']""", re.I)
_HTML_TAG = re.compile(r"<[^>\n]+>")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_MDX_STATEMENT = re.compile(r"^(?:import|export)\s")
# [text](target "title") and ![alt](src): the target group is what gets made absolute.
_INLINE_LINK = re.compile(
    r"(!?\[(?:[^\[\]\n]|\[[^\[\]\n]*\])*\]\()\s*(<[^<>\n]*>|[^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)"
)
_REFERENCE = re.compile(r"^( {0,3}\[[^\]\n]+\]:\s*)(<[^<>\n]*>|\S+)", re.M)
_SLUG_DROP = re.compile(r"[^\w\- ]", re.UNICODE)
_MAX_TITLE = 300


def check_line_lengths(text: str, url: str) -> None:
    """ExtractError for a text with a line over MAX_LINE_CHARS: generated data, not a document to read."""
    longest = max((len(line) for line in text.split("\n")), default=0)
    if longest > MAX_LINE_CHARS:
        raise ExtractError(
            f"{url} has a line of {longest} characters (limit {MAX_LINE_CHARS}): it is generated data, not a "
            "document to index"
        )


def github_slug(text: str) -> str:
    """The anchor GitHub (and github-slugger) gives a heading: lower case, punctuation dropped, spaces → hyphens."""
    return _SLUG_DROP.sub("", text.strip().lower()).replace(" ", "-")


def jupyter_slug(text: str) -> str:
    """The anchor Jupyter gives a markdown heading: the text with spaces → hyphens, case kept."""
    return text.strip().replace(" ", "-")


def url_file_title(url: str) -> str:
    """A title from the URL's file name ("getting-started.md" → "getting-started"), or its host."""
    parts = urlsplit(url)
    stem = posixpath.splitext(posixpath.basename(unquote(parts.path).rstrip("/")))[0]
    return (stem or parts.netloc or url)[:_MAX_TITLE]


def _inline_text(token: Token) -> str:
    """The visible text of an inline token (code spans keep their content, tags and markup go)."""
    out: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type == "image":
            out.append(child.content)
    return clean_heading("".join(out))


class MarkdownDocument:
    """One pass over a markdown source: sections split at headings, links made absolute and collected."""

    def __init__(self, source: str, url: str, *, slug: Callable[[str], str] = github_slug, mdx: bool = False) -> None:
        self.url = url
        self.slug = slug
        self.mdx = mdx
        self.links: list[str] = []
        self.front_title: str | None = None
        self._used: dict[str, int] = {}
        self.source = self._strip_front_matter(source.replace("\r\n", "\n").replace("\r", "\n"))
        check_line_lengths(self.source, url)

    def _strip_front_matter(self, text: str) -> str:
        match = _FRONT_MATTER.match(text)
        if match is None:
            return text
        title = _FRONT_TITLE.search(match.group(1))
        if title:
            self.front_title = clean_heading(title.group(1).strip("\"'")) or None
        return "\n" * match.group(0).count("\n") + text[match.end() :]  # keep line numbers for the token maps

    def _anchor(self, heading_line: str, text: str) -> tuple[str, str | None]:
        """(heading text without an explicit id, the heading's anchor)."""
        explicit = _EXPLICIT_ID.search(text)
        if explicit:
            return text[: explicit.start()].strip(), safe_fragment(explicit.group(1))
        html_id = _HTML_ID.search(heading_line)
        if html_id:
            return text, safe_fragment(html_id.group(1))
        base = self.slug(text)
        if not base:
            return text, None
        seen = self._used.get(base, 0)
        self._used[base] = seen + 1  # duplicates get -1, -2... as on GitHub
        return text, safe_fragment(base if seen == 0 else f"{base}-{seen}")

    def _prose(self, text: str) -> str:
        """Prose lines: comments dropped, link targets made absolute (and collected for crawling)."""
        text = _COMMENT.sub("", text)

        def absolute(match: re.Match[str]) -> str:
            target = match.group(2)
            bare = target[1:-1] if target.startswith("<") else target
            if not bare or bare.startswith("#"):
                return match.group(0)
            if not match.group(1).startswith("!"):
                link = absolute_url(bare, self.url)
                if link:
                    self.links.append(link)
            resolved = safe_url(bare, self.url)
            return match.group(1) + (resolved if resolved else target)

        text = _INLINE_LINK.sub(absolute, text)
        return _REFERENCE.sub(lambda m: m.group(1) + (safe_url(m.group(2).strip("<>"), self.url) or m.group(2)), text)

    def sections(self) -> list[Section]:
        """The document split at its headings; the path is the heading stack."""
        lines = self.source.split("\n")
        tokens = _PARSER.parse(self.source)
        raw: list[tuple[int, str, str | None, list[str]]] = [(0, "", None, [])]
        cursor = 0
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.level != 0 or tok.map is None:
                i += 1
                continue
            start, end = tok.map
            if start > cursor:
                raw[-1][3].append(self._prose("\n".join(lines[cursor:start])))
            if tok.type == "heading_open":
                text, anchor = self._anchor(lines[start], _inline_text(tokens[i + 1]))
                raw.append((int(tok.tag[1]), text, anchor, []))
            elif tok.type == "fence":
                raw[-1][3].append("\n".join(lines[start:end]))
            elif tok.type == "code_block":
                raw[-1][3].append("```\n" + tok.content.rstrip("\n") + "\n```")
            elif tok.type == "html_block" and not _COMMENT.sub("", tok.content).strip():
                pass  # a comment block: invisible on the rendered page
            elif self.mdx and tok.type == "paragraph_open" and _MDX_STATEMENT.match(lines[start]):
                pass  # MDX import/export statements are code for the site's build, not text
            else:
                raw[-1][3].append(self._prose("\n".join(lines[start:end])))
            cursor = max(cursor, end)
            i += 1
        if cursor < len(lines):
            raw[-1][3].append(self._prose("\n".join(lines[cursor:])))
        return _stack_paths(raw)


def _stack_paths(raw: list[tuple[int, str, str | None, list[str]]]) -> list[Section]:
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    for level, heading, anchor, parts in raw:
        body = clean_markdown(re.sub(r"\n{3,}", "\n\n", "\n\n".join(p.strip("\n") for p in parts if p.strip())))
        if level == 0:
            if body:
                sections.append(Section(level=0, heading="", anchor=None, markdown=body, path=()))
            continue
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
        sections.append(Section(level, heading, anchor, body, tuple(h for _, h in stack)))
    return sections


def page_from_sections(sections: list[Section], url: str, title: str | None = None) -> ExtractedPage:
    """An ExtractedPage: the title (given, else the first h1, else the file name) dropped from the paths' top."""
    if not any(s.markdown.strip() or s.heading.strip() for s in sections):
        raise ExtractError(f"The document at {url} has no readable text content.")
    first_h1 = next((s.heading for s in sections if s.level == 1 and s.heading), None)
    title = (title or first_h1 or url_file_title(url))[:_MAX_TITLE]
    trimmed = tuple(
        Section(s.level, s.heading, s.anchor, s.markdown, s.path[1:] if s.path[:1] == (title,) else s.path)
        for s in sections
    )
    return ExtractedPage(title=title, sections=trimmed)


def extract_markdown(
    source: str, url: str, *, slug: Callable[[str], str] = github_slug
) -> tuple[ExtractedPage, list[str]]:
    """A Markdown or MDX document as sections, with the links it makes (absolute, for crawling)."""
    mdx = urlsplit(url).path.lower().endswith(".mdx")
    doc = MarkdownDocument(source, url, slug=slug, mdx=mdx)
    page = page_from_sections(doc.sections(), url, doc.front_title)
    return page, list(dict.fromkeys(doc.links))
