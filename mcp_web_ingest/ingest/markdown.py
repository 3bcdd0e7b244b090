"""A cleaned main-content node → markdown with heading sentinels, converted by html-to-markdown (Rust).

markdownify over a second (BeautifulSoup) parse of the node took ~60 ms of a 75 ms page on the Python docs; here
the lexbor tree we already hold is prepared in place and serialised once, and the Rust converter does the rest
(~5 ms). Measured on the 530 pages: the same sections, every code block kept. What the converter cannot be told
is done around it: each heading and definition term is replaced by a marker word before conversion (with a
per-call random nonce, so page text cannot forge one) and turned into our heading sentinel (or a bold / code
term) afterwards; code languages go in as ``language-*`` classes.
"""

from __future__ import annotations

import html
import re
import secrets
from typing import NamedTuple

import html_to_markdown
from selectolax.lexbor import LexborNode

from mcp_web_ingest.ingest.markers import HEADINGS
from mcp_web_ingest.ingest.sanitize import clean_text

__all__ = ["MARK", "clean_heading", "node_markdown"]

# A heading becomes "\x00H<level>\x01<anchor>\x01<text>\x00" in the markdown; control characters were
# stripped from the input, so these cannot occur in page text.
MARK = re.compile(r"\x00H([1-6])\x01([^\x00\x01]*)\x01([^\x00\x01]*)\x00")
_WS = re.compile(r"\s+")
_OPTIONS = html_to_markdown.ConversionOptions(
    heading_style="atx",
    bullets="-",
    escape_asterisks=False,  # escaping `sort_keys` as `sort\_keys` would hurt keyword search
    escape_underscores=False,
    escape_misc=False,
    autolinks=False,
    extract_metadata=False,
    code_block_style="backticks",
    compact_tables=True,  # padding cells to the column width multiplied the tokens of wide tables
    link_style="inline",
    # Boilerplate is already gone (extract._drop_boilerplate); the converter's own guesses would drop content.
    preprocessing=html_to_markdown.PreprocessingOptions(enabled=False),
)


def clean_heading(text: str) -> str:
    """Collapse whitespace, drop pilcrows (permalink markers) and invisible characters from heading-like text."""
    return _WS.sub(" ", clean_text(text.replace("¶", ""))).strip()


class _Mark(NamedTuple):
    """What a marker word stands for: a heading (level 1-6, its anchor) or a definition term (level 0)."""

    level: int
    anchor: str
    text: str
    signature: bool = False  # a term that is an API signature (Sphinx's dt.sig)


def _mark_terms(main: LexborNode, word: str) -> list[_Mark]:
    """Replace headings and definition terms by marker words; returns what each marker stands for."""
    marks: list[_Mark] = []
    # Innermost first: a heading nested in another one is marked before the outer one reads its text.
    for node in reversed(main.css(f"{HEADINGS}, dt")):
        text = _unmark(clean_heading(node.text()), word, marks)
        if not text:
            node.decompose()
            continue
        if node.tag == "dt":
            marks.append(_Mark(0, "", text, signature="sig" in (node.attributes.get("class") or "").split()))
        else:
            marks.append(_Mark(int(node.tag[1]), node.attributes.get("data-wi-anchor") or "", text))
        node.inner_html = f"{word}{len(marks) - 1}x"
    return marks


def _unmark(text: str, word: str, marks: list[_Mark]) -> str:
    """Text with the marker words of nested terms put back as their text."""
    if word not in text:
        return text
    return re.sub(rf"{word}(\d+)x", lambda m: marks[int(m.group(1))].text, text)


def _prepare(main: LexborNode) -> None:
    """Code as plain text with its language as a class; images without alt dropped; no link titles."""
    for pre in main.css("pre"):
        lang = pre.attributes.get("data-wi-lang")
        pre.attrs["class"] = f"language-{lang}" if lang else ""
        # Code is verbatim text: markup inside it (links of grammar productions, a <code class>) would come
        # out as markdown links or another language inside the fence.
        pre.inner_html = html.escape(pre.text(), quote=False)
    for img in main.css("img"):
        alt = clean_heading(img.attributes.get("alt") or "")
        if not alt:
            img.decompose()  # decorative images carry nothing searchable
        elif not img.attributes.get("src"):
            img.replace_with(alt)
    for a in main.css("a"):
        if "title" in a.attributes:
            del a.attrs["title"]
        if not a.text(strip=True) and a.css_first("img") is None:
            a.decompose()


def node_markdown(main: LexborNode) -> str:
    """The node as markdown, headings as sentinel lines (see MARK); the node is changed in the process."""
    word = f"wi{secrets.token_hex(6)}m"
    marks = _mark_terms(main, word)
    _prepare(main)
    markdown = html_to_markdown.convert(main.html or "", _OPTIONS).content

    def sentinel(m: re.Match[str]) -> str:
        level, anchor, text, signature = marks[int(m.group("i"))]
        if level == 0:  # a definition term: API signatures stay searchable verbatim as code, others are bold
            return f"`{text.replace('`', '')}`" if signature else f"**{text}**"
        if m.group("head"):  # a heading line of its own
            return f"\n\n\x00H{level}\x01{anchor}\x01{text}\x00\n\n"
        return f" {text} "  # a heading inside a table cell or a link cannot hold a line break

    return re.sub(rf"(?P<head>^#{{1,6}}[ \t]+)?{word}(?P<i>\d+)x", sentinel, markdown, flags=re.MULTILINE)
