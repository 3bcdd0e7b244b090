"""PDF documents → sections from the outline (bookmarks), else from font sizes, else one per page; read by pypdf.

pypdf won the measurement in tools/measure_pdf.py: about twice as fast as pdfminer.six, reading order kept where
pdfminer's layout analysis cut signatures apart, outline destinations resolved to pages by the library, and no
required dependencies. Every section's anchor is ``page=N``, the standard PDF open parameter, so the deep link
``url#page=N`` opens the page where the section starts.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.formats.markdown_doc import url_file_title
from mcp_web_ingest.ingest.markdown import clean_heading
from mcp_web_ingest.ingest.sanitize import clean_markdown
from mcp_web_ingest.models import ExtractedPage, Section

__all__ = ["MAX_PAGES", "MAX_TEXT_CHARS", "extract_pdf"]

MAX_PAGES = 2000
MAX_TEXT_CHARS = 20_000_000
_MAX_OUTLINE = 10_000  # outline entries read; more is a generated or hostile outline
_MAX_TITLE = 300
_TAIL = 1024  # readers look for startxref and %%EOF in the last KiB
_NUMBER_PREFIX = 12  # key characters a heading line may hold before its outline title ("chapter12", "appendixa")
_HEADING_RATIO = 1.15  # a line this much larger than the body text is a heading
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF")
_KEY_DROP = re.compile(r"[\W_]+")
_PAGE_NUMBER = re.compile(
    r"^(?:\d{1,5}|(?=[ivxlcdm])m{0,3}(?:c[md]|d?c{0,3})(?:x[cl]|l?x{0,3})(?:i[xv]|v?i{0,3}))$", re.I
)
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"[ \t\xa0]+")
_LEADERS = re.compile(r"(?:[ \t]?\.){4,}[ \t]*")  # table-of-contents dot leaders
_BULLET = re.compile(r"^(?:[•◦▪‣∙○●■□–—*]|\d{1,3}[.)]\s|\(?[a-z]\)\s)")
_HYPHENATED = re.compile(r"([A-Za-z]*[a-z])-\n([a-z]+)")
_COMPOUND = re.compile(r"[a-z]+-[a-z]+")
_WORD = re.compile(r"[a-z]+")
_BROKEN_IDENT = re.compile(r"(?<=\w_)\n(?=\w)")  # TeX breaks long identifiers after an underscore
_TEX_COPYRIGHT = re.compile(r"\bc©")  # TeX draws © as a "c" inside a circle glyph
_MD_BLOCK = re.compile(r"^(?=#|>|```|~~~|[-=*_ ]{3,}$)", re.M)  # PDF text that markdown would read as markup
_SENTENCE_END = (".", "!", "?", ":")
_JUNK_TITLE = re.compile(
    r"^(?:untitled|title|document|microsoft .*|\W*|[\w\-. ]+\.(?:pdf|docx?|odt|rtf|tex|dvi|ps|pptx?|indd|txt))$", re.I
)


@dataclass(frozen=True)
class _Line:
    """One line of page text, the font size most of its characters have, and its 1-based page."""

    text: str
    size: float
    page: int


@dataclass(frozen=True)
class _Start:
    """Where a section starts: its heading, the index of its heading line and of the first line of its body."""

    level: int
    heading: str
    path: tuple[str, ...]
    page: int
    at: int
    body: int


def extract_pdf(body: bytes, url: str) -> ExtractedPage:
    """A PDF as sections with ``page=N`` anchors; ExtractError when it cannot be indexed."""
    _check_complete(body, url)
    try:
        import pypdf
        from pypdf.errors import DependencyError
    except ImportError as e:
        raise ExtractError(f"PDF support (pypdf) is not installed here, so {url} cannot be indexed") from e
    # Recoverable damage is logged by pypdf at warning level, once per object: noise in the worker's log.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        return _extract(pypdf, body, url)
    except ExtractError:
        raise
    except DependencyError as e:  # AES encryption needs the optional cryptography package
        raise ExtractError(f"The PDF at {url} cannot be read here: {e}") from e
    except Exception as e:  # pypdf raises its own errors, and ValueError, KeyError, TypeError... on broken objects
        why = f"{type(e).__name__}: {e}"[:160]
        raise ExtractError(f"The PDF at {url} is damaged or truncated and could not be read ({why})") from e


def _check_complete(body: bytes, url: str) -> None:
    """ExtractError unless the file has a PDF header and ends with startxref and %%EOF (a whole download)."""
    damaged = f"The PDF at {url} is damaged or truncated"
    if not body:
        raise ExtractError(f"{damaged}: the file is empty")
    if body.find(b"%PDF-", 0, _TAIL) < 0:
        raise ExtractError(f"{damaged}: it has no %PDF- header, so it is not a PDF file")
    # pypdf would rebuild a lost cross-reference table and return the pages it still finds: half a document
    # indexed as if whole. A file without its end marker is a cut download, so refuse it.
    tail = body[-_TAIL:]
    if b"%%EOF" not in tail:
        raise ExtractError(f"{damaged}: it does not end with %%EOF (probably a partial download); fetch it again")
    found = _STARTXREF.findall(tail)
    if not found or int(found[-1]) >= len(body):
        raise ExtractError(f"{damaged}: its cross-reference table (startxref) is missing or points past the end")


def _extract(pypdf: Any, body: bytes, url: str) -> ExtractedPage:
    reader = pypdf.PdfReader(io.BytesIO(body), strict=False)
    # An owner password alone only restricts printing or copying: the empty user password opens the file.
    if reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED:
        raise ExtractError(f"The PDF at {url} is encrypted (password-protected); only unencrypted PDFs can be indexed")
    count = len(reader.pages)
    if count > MAX_PAGES:
        raise ExtractError(f"The PDF at {url} has {count} pages; at most {MAX_PAGES} pages can be indexed")
    pages: list[list[_Line]] = []
    budget = [MAX_TEXT_CHARS]
    for number, page in enumerate(reader.pages, 1):
        pages.append(_page_lines(page, number, budget, url))
    if not any(ch.isalnum() for lines in pages for line in lines for ch in line.text):
        raise ExtractError(f"The PDF at {url} has no text layer (scanned or image-only); OCR is not supported")
    sizes: Counter[float] = Counter()
    for line in (line for lines in pages for line in lines):
        sizes[round(line.size * 2) / 2] += len(line.text)
    body_size = sizes.most_common(1)[0][0]
    cover_title = _cover_title(pages[0], body_size)  # before running headers go: the title is often one of them
    _drop_running_lines(pages)
    lines = [line for page_lines in pages for line in page_lines]
    first = [0]  # index in ``lines`` of the first line of each page
    for page_lines in pages:
        first.append(first[-1] + len(page_lines))
    starts = _outline_starts(reader, first, lines, body_size) or _font_starts(lines, body_size, count, cover_title)
    title = _info_title(reader) or cover_title or (starts[0].heading if starts else "") or url_file_title(url)
    if not starts:  # no structure to follow: one section per page, so that every chunk still links to its page
        pages_with_text = [n for n in range(1, count + 1) if first[n] > first[n - 1]]
        starts = [_Start(1, f"Page {n}", (f"Page {n}",), n, first[n - 1], first[n - 1]) for n in pages_with_text]
    return ExtractedPage(title=title[:_MAX_TITLE], sections=_sections(starts, lines, body_size))


def _page_lines(page: Any, number: int, budget: list[int], url: str) -> list[_Line]:
    """The page's text lines, each with the font size that most of its characters are set in."""
    lines: list[_Line] = []
    parts: list[str] = []
    sizes: Counter[float] = Counter()

    def end_line() -> None:
        text = _SPACES.sub(" ", "".join(parts)).strip()
        if text:
            lines.append(_Line(text, sizes.most_common(1)[0][0], number))
        parts.clear()
        sizes.clear()

    def visit(text: str, cm: list[float], tm: list[float], _font: object, size: float) -> None:
        budget[0] -= len(text)
        if budget[0] < 0:  # checked as text arrives: one page can hold gigabytes
            raise ExtractError(f"The PDF at {url} has over {MAX_TEXT_CHARS:,} characters of text; too large to index")
        # The size in text space times the vertical scale of the text and graphics matrices: points on the page.
        points = round(float(size or 0) * abs(tm[3] or tm[2] or 1.0) * abs(cm[3] or cm[2] or 1.0), 1)
        for i, chunk in enumerate(text.split("\n")):
            if i:
                end_line()
            parts.append(chunk)
            sizes[points] += len(chunk.strip()) or 0.001  # so that a line of spaces still has a size

    page.extract_text(visitor_text=visit)
    end_line()
    return lines


def _drop_running_lines(pages: list[list[_Line]]) -> None:
    """Remove page numbers and the running headers and footers repeated at the top or bottom of pages."""
    for lines in pages:
        for end in (0, -1):
            if lines and _PAGE_NUMBER.match(lines[end].text):
                lines.pop(end)
    for end in (0, -1):
        seen = Counter(_DIGITS.sub("#", lines[end].text) for lines in pages if lines)
        for lines in pages:
            if len(pages) >= 4 and lines and seen[_DIGITS.sub("#", lines[end].text)] >= 3:
                lines.pop(end)
                if lines and _PAGE_NUMBER.match(lines[end].text):
                    lines.pop(end)


def _key(text: str) -> str:
    return _KEY_DROP.sub("", text).casefold()


def _outline_starts(reader: Any, first: list[int], lines: list[_Line], body_size: float) -> list[_Start]:
    """Section starts from the outline, each heading located in its page's text when it can be found."""
    try:
        entries = _outline(reader)
    except Exception:  # a broken outline is not a broken document: fall back to font sizes or pages
        return []
    starts: list[_Start] = []
    cursor = 0
    for level, title, path, page in sorted(entries, key=lambda e: e[3]):
        at, used = _locate(lines, max(cursor, first[page - 1]), first[page], _key(title), body_size)
        cursor = at + used
        starts.append(_Start(level, title, path, page, at, at + used))
    return starts


def _outline(reader: Any) -> list[tuple[int, str, tuple[str, ...], int]]:
    """(level 1-6, title, heading path, 1-based page) of each outline entry with a page, in outline order."""
    out: list[tuple[int, str, tuple[str, ...], int]] = []
    stack = [iter(reader.outline)]
    path: list[str] = []
    for _ in range(_MAX_OUTLINE * 2):  # iterative, bounded: outlines can nest deeper than Python recursion
        item = next(stack[-1], None) if stack else None
        if item is None:
            if not stack:
                break
            stack.pop()
            continue
        if isinstance(item, list):  # the children of the entry just read
            stack.append(iter(item))
            continue
        title = clean_heading(str(item.title or ""))[:_MAX_TITLE]
        del path[len(stack) - 1 :]
        path.append(title)
        page = reader.get_destination_page_number(item)
        if title and page is not None and 0 <= page < len(reader.pages):
            out.append((min(len(stack), 6), title, tuple(p for p in path if p), page + 1))
    return out


def _locate(lines: list[_Line], lo: int, hi: int, key: str, body_size: float) -> tuple[int, int]:
    """(index, line count) of the heading text in lines[lo:hi], larger type first; (lo, 0) when not found."""
    found: list[tuple[int, int]] = []
    for j in range(lo, hi if key else lo):
        k = _key(lines[j].text)
        if k.endswith(key) and len(k) - len(key) <= _NUMBER_PREFIX:
            found.append((j, 1))
        elif j + 1 < hi and k and len(k) < len(key):  # a heading wrapped onto two lines
            k2 = k + _key(lines[j + 1].text)
            if k2.endswith(key) and len(k2) - len(key) <= _NUMBER_PREFIX:
                found.append((j, 2))
    large = [f for f in found if lines[f[0]].size > body_size * 1.05]
    return (large or found or [(lo, 0)])[0]


def _font_starts(lines: list[_Line], body_size: float, page_count: int, title: str) -> list[_Start]:
    """Section starts at lines set larger than the body text, when they look like a heading hierarchy."""
    # The cover title and bold table-of-contents entries (dot leaders) are large but start no section.
    marks = [
        i
        for i, line in enumerate(lines)
        if line.size >= body_size * _HEADING_RATIO
        and 2 <= len(line.text) <= 150
        and any(c.isalpha() for c in line.text)
        and not _LEADERS.search(line.text)
        and not (line.page == 1 and _key(line.text) == _key(title))
    ]
    # Too many large lines is a poster or slides, too few leaves sections of many pages: pages link better then.
    if len(marks) < 2 or len(marks) > len(lines) // 4 or len(marks) * 5 < page_count:
        return []
    ranks = sorted({round(lines[i].size) for i in marks}, reverse=True)
    starts: list[_Start] = []
    path: list[tuple[int, str]] = []
    for i in marks:
        prev = starts[-1] if starts else None
        if prev and prev.body == i and lines[i].size == lines[prev.at].size and i - prev.at < 3:
            path[-1] = (prev.level, f"{prev.heading} {clean_heading(lines[i].text)}")  # a heading on 2-3 lines
            starts[-1] = _Start(prev.level, path[-1][1], tuple(h for _, h in path), prev.page, prev.at, i + 1)
            continue
        level = min(ranks.index(round(lines[i].size)) + 1, 6)
        path = [p for p in path if p[0] < level] + [(level, clean_heading(lines[i].text))]
        starts.append(_Start(level, path[-1][1], tuple(h for _, h in path), lines[i].page, i, i + 1))
    return starts


def _info_title(reader: Any) -> str:
    """The document information /Title, unless empty or a file name ("Microsoft Word - report.docx")."""
    try:
        title = clean_heading(str(reader.metadata.title or "")) if reader.metadata else ""
    except Exception:  # a broken information dictionary only loses the title
        return ""
    return "" if _JUNK_TITLE.match(title) else title


def _cover_title(lines: list[_Line], body_size: float) -> str:
    """The largest text on the first page (up to three lines), when it stands out from the body text."""
    top = max((line.size for line in lines), default=0.0)
    if top < body_size * _HEADING_RATIO:
        return ""
    at = next(i for i, line in enumerate(lines) if line.size == top)
    run = [line.text for line in lines[at : at + 3] if line.size == top]
    title = clean_heading(" ".join(run))
    return title if len(title) >= 2 else ""


def _sections(starts: list[_Start], lines: list[_Line], body_size: float) -> tuple[Section, ...]:
    bodies = sorted(len(line.text) for line in lines if abs(line.size - body_size) < 0.5)
    width = bodies[int(len(bodies) * 0.9)] if bodies else 0  # a full line of body text, in characters
    text = "\n".join(line.text.casefold() for line in lines)
    words, compounds = set(_WORD.findall(text)), set(_COMPOUND.findall(text))
    out: list[Section] = []
    intro = _markdown(lines[: starts[0].at] if starts else lines, width, words, compounds)
    if intro:
        out.append(Section(0, "", "page=1", intro, ()))
    for s, nxt in zip(starts, [*starts[1:], None], strict=True):
        chunk = lines[s.body : nxt.at if nxt else len(lines)]
        out.append(Section(s.level, s.heading, f"page={s.page}", _markdown(chunk, width, words, compounds), s.path))
    return tuple(out)


def _markdown(lines: list[_Line], width: int, words: set[str], compounds: set[str]) -> str:
    """Lines → paragraphs separated by blank lines, line-end hyphenation undone where the document allows it."""
    paragraphs: list[list[str]] = []
    prev: _Line | None = None
    for line in lines:
        # A new paragraph after a short line that ends a sentence, at a bullet, or where the type size changes.
        if (
            prev is None
            or abs(line.size - prev.size) > 0.5
            or _BULLET.match(line.text)
            or (len(prev.text) < width * 0.8 and prev.text.endswith(_SENTENCE_END))
        ):
            paragraphs.append([])
        paragraphs[-1].append(line.text)
        prev = line

    def join(m: re.Match[str]) -> str:
        # "declara-/tions" → "declarations"; a compound the document spells with a hyphen keeps it.
        head, tail = m.group(1), m.group(2)
        keep = f"{head}-{tail}".casefold() in compounds and (head + tail).casefold() not in words
        return f"{head}-{tail}" if keep else head + tail

    out = []
    for paragraph in paragraphs:
        text = _BROKEN_IDENT.sub("", _HYPHENATED.sub(join, "\n".join(paragraph)))
        out.append(_MD_BLOCK.sub("\\\\", _TEX_COPYRIGHT.sub("©", _LEADERS.sub(" … ", text))))
    return clean_markdown("\n\n".join(out))
