"""What reaches clients must stay inert in a browser: one URL allow-list, no invisible characters, no live markup.

``safe_url`` decides every link and image target, ``safe_fragment`` every heading anchor, ``clean_text`` removes
bidi controls and invisible characters from any text, and ``clean_markdown`` is the last pass over produced
markdown: it drops link targets with a disallowed scheme however they were spelled or forged (alt text, page
text, split links), and escapes raw HTML outside code, so no renderer can turn a result into a script.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

__all__ = ["LINK_SCHEMES", "WEB_SCHEMES", "clean_markdown", "clean_text", "safe_fragment", "safe_url"]

WEB_SCHEMES = frozenset({"http", "https"})
LINK_SCHEMES = WEB_SCHEMES | {"mailto"}  # relative URLs and fragments are allowed too; everything else is dropped

# Browsers remove ASCII tab/LF/CR anywhere in a URL and trim C0 controls and spaces at both ends before they
# read the scheme, so "java\tscript:" and " \x01javascript:" are both javascript: to them.
_URL_IGNORED = re.compile(r"[\t\n\r]")
_URL_EDGE = "".join(map(chr, range(0x21)))
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# Bidi embeddings/overrides/isolates and marks (Trojan Source, spoofed text), zero-width and invisible
# operators, the BOM, and Unicode tag characters (invisible ASCII smuggled to language models).
_INVISIBLE = "\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f"
_STRIP = re.compile(f"[{_INVISIBLE}\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# ZWNJ/ZWJ are needed inside emoji sequences and Persian/Indic words; next to ASCII or space they only hide text.
_LONE_JOINER = re.compile(r"(?<![^\x00-\x7f\s])[\u200c\u200d]|[\u200c\u200d](?![^\x00-\x7f\s])")
# Escaped in URLs so a URL cannot end a markdown target or an HTML attribute, nor carry invisible characters.
_URL_ESCAPE = re.compile(f"[\\s()<>\"'`\\\\\x00-\x1f\x7f-\x9f\u200c\u200d{_INVISIBLE}]")

_MAX_TARGET = 2048  # the longest link target read when one is dropped
_SCHEME_WINDOW = 128  # characters of a target read to find its scheme (entities included)
_LINK_TARGET = re.compile(r"\]\([ \t]*(?:\n[ \t]*)?(<)?")
_ANGLE_TARGET = re.compile(rf"[^<>\n]{{0,{_MAX_TARGET}}}")
# A bare target ends at a space, a control character or an unbalanced ")" (one level of parentheses is read; a
# deeper "(" ends it early, which cannot hide a scheme: "(" is not allowed in one).
_BARE_CHAR = r"[^ \x00-\x1f\x7f()\\]|\\[^ \x00-\x1f\x7f]"
_BARE_TARGET = re.compile(rf"(?:{_BARE_CHAR}|\((?:{_BARE_CHAR})*\)){{0,{_MAX_TARGET}}}")
_REFERENCE = re.compile(r"^( {0,3}\[(?:\\.|[^\\\[\]\n])+\]):[ \t]*(?:\n[ \t]*)?(<[^<>\n]*>|[^ \x00-\x1f\x7f]+)", re.M)
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_RAW_HTML = re.compile(r"<(?=[A-Za-z/!?])")  # a tag, comment, declaration or autolink opener
_FENCE = re.compile(r"^( *)(`{3,}|~{3,})(.*)$")
_BACKTICKS = re.compile(r"`+")
_PIPE = re.compile(r"(?<!\\)\|")
# A line that continues a paragraph in every renderer: it cannot open a list item, heading, quote, HTML block,
# fence, thematic break or setext underline (a table header is told by the delimiter row under it).
_CONTINUATION = re.compile(r"^ *(?![<>#|+\-*=_~:]|\d+[.)]|```)")
_DELIMITER_ROW = re.compile(r"^[ |:\-]*-[ |:\-]*$")
_CLOSE = re.compile(r" *\)")


def _pct(m: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in m.group().encode("utf-8"))


def _allowed(url: str, schemes: frozenset[str]) -> bool:
    m = _SCHEME.match(url)
    return m is None or m.group(1).lower() in schemes


def safe_url(
    url: str | None, base: str | None = None, schemes: frozenset[str] = LINK_SCHEMES, *, escape: bool = True
) -> str | None:
    """``url`` made absolute against ``base`` when relative or of an allowed scheme, else None.

    Read as browsers read an href: entities already decoded by the parser, ASCII tab/LF/CR removed, C0 controls
    and spaces trimmed, scheme compared case-insensitively. ``escape`` percent-escapes the characters that could
    end a markdown target or an HTML attribute (off for URLs that are compared, not shown).
    """
    if not url:
        return None
    url = _URL_IGNORED.sub("", url).strip(_URL_EDGE)
    if not url or not _allowed(url, schemes):
        return None
    if base is not None:
        try:
            url = urljoin(base, url)
        except ValueError:
            return None
        if not _allowed(url, schemes):
            return None
    return _URL_ESCAPE.sub(_pct, url) if escape else url


def safe_fragment(fragment: str | None) -> str | None:
    """A heading id as a URL fragment: invisible characters removed, characters unsafe in markup escaped."""
    fragment = clean_text(fragment or "").strip()
    return _URL_ESCAPE.sub(_pct, fragment) or None


def clean_text(text: str) -> str:
    """``text`` without control, bidi-control and invisible characters (ZWJ/ZWNJ kept between non-ASCII letters)."""
    return _LONE_JOINER.sub("", _STRIP.sub("", text))


def clean_markdown(markdown: str) -> str:
    """The last pass over produced markdown: clean_text, unsafe link targets dropped, raw HTML escaped outside code.

    Fenced code is kept verbatim (bidi controls and invisible characters aside); a fence only counts as code when
    every renderer agrees it is one, so forged or broken fences are treated as text.
    """
    out: list[str] = []
    for text, is_code in _split_fenced(clean_text(markdown)):
        out.append(text if is_code else _clean_prose(text))
    return "".join(out)


def _split_fenced(text: str) -> list[tuple[str, bool]]:
    """(piece, is_code) in order; the pieces concatenate back to ``text``."""
    lines = text.split("\n")
    pieces: list[tuple[str, bool]] = []
    blocked: dict[tuple[int, str], tuple[int, int]] = {}
    start = i = 0
    while i < len(lines):
        end = _fence_end(lines, i, blocked)
        if end is None:
            i += 1
            continue
        if start < i:
            pieces.append(("\n".join(lines[start:i]) + "\n", False))
        pieces.append(("\n".join(lines[i : end + 1]) + ("\n" if end + 1 < len(lines) else ""), True))
        start = i = end + 1
    if start < len(lines):
        pieces.append(("\n".join(lines[start:]), False))
    return pieces


def _fence_end(lines: list[str], i: int, blocked: dict[tuple[int, str], tuple[int, int]]) -> int | None:
    """Index of the last line of the fenced block ``lines[i]`` opens, or None when renderers may not see code.

    ``blocked`` remembers where a fence stopped being readable, so that many look-alike openers stay linear.
    """
    m = _FENCE.match(lines[i])
    if m is None or (m.group(2)[0] == "`" and "`" in m.group(3)):
        return None
    indent, fence = len(m.group(1)), m.group(2)
    # Indented 4+, it is code only after a blank line (else it continues a paragraph); indented at all, it may
    # sit in a list item, which ends (and the code with it) at the first line indented less.
    if indent >= 4 and i > 0 and lines[i - 1].strip():
        return None
    seen = blocked.get((indent, fence[0]))
    if seen is not None and i < seen[0] and len(fence) >= seen[1]:
        return None
    for j in range(i + 1, len(lines)):
        line = lines[j]
        stripped = line.lstrip(" ")
        if not stripped:
            continue
        if len(line) - len(stripped) < indent:
            blocked[(indent, fence[0])] = (j, len(fence))
            return None
        body = stripped.rstrip(" ")
        if len(line) - len(stripped) == indent and body == fence[0] * len(body) and len(body) >= len(fence):
            return j
    return len(lines) - 1  # unclosed: code up to the end, as CommonMark reads it


def _clean_prose(text: str) -> str:
    text = _drop_unsafe_targets(text)
    text = _REFERENCE.sub(lambda m: m.group(0) if _target_allowed(m.group(2)) else m.group(1), text)
    spans = _code_spans(text)
    out: list[str] = []
    pos = 0
    for start, end in [*spans, (len(text), len(text))]:
        out.append(_RAW_HTML.sub("&lt;", text[pos:start]))
        out.append(text[start:end])
        pos = end
    return "".join(out)


def _target_allowed(raw: str, complete: bool = True) -> bool:
    """Whether a markdown link target, decoded like a renderer and a browser would, has an allowed scheme.

    ``raw`` may be only the start of the target (``complete`` False): then it must show its scheme, since tab
    entities ("j&#9;&#9;…avascript:") can push one arbitrarily far.
    """
    if raw.startswith("<"):
        raw = raw[1:-1] if raw.endswith(">") else raw[1:]
    url = _URL_IGNORED.sub("", html.unescape(_MD_ESCAPE.sub(r"\1", raw))).strip(_URL_EDGE)
    m = _SCHEME.match(url)
    if m is None:
        return complete
    return m.group(1).lower() in LINK_SCHEMES


def _drop_unsafe_targets(text: str) -> str:
    """``[text](target)`` and ``![alt](target)`` with a disallowed target become ``[text]`` / ``![alt]``."""
    out: list[str] = []
    pos = 0
    for m in _LINK_TARGET.finditer(text):
        if m.start() < pos:
            continue
        pattern = _ANGLE_TARGET if m.group(1) is not None else _BARE_TARGET
        # Only the start of each target is read (bounded work however many "](" a text holds); it holds the scheme.
        head = pattern.match(text, m.end(), m.end() + _SCHEME_WINDOW)
        assert head is not None  # both patterns match the empty string
        if _target_allowed(head.group(), complete=head.end() < m.end() + _SCHEME_WINDOW):
            continue
        target = pattern.match(text, m.end())
        assert target is not None
        end = target.end()
        if m.group(1) is not None and text.startswith(">", end):
            end += 1
        close = _CLOSE.match(text, end)
        if close is not None:
            end = close.end()
        out.append(text[pos : m.start() + 1])
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Inline code spans (start, end) that any CommonMark/GFM renderer also reads as code.

    A span may run over lines only through lines that cannot start a block (no list marker, heading, quote,
    table, HTML...), where every renderer still sees one paragraph; in a table, GFM cuts cells at pipes before it
    looks for code. When that is not sure the rest of the paragraph gets no code spans: escaping too much inside
    code only shows an entity, escaping too little would leave markup live.
    """
    spans: list[tuple[int, int]] = []
    opener: tuple[int, int] | None = None  # (offset, length) of a run still looking for its partner
    unsure = table = False
    offset = 0
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            opener, unsure, table = None, False, False
        elif not table and i + 1 < len(lines) and _DELIMITER_ROW.match(lines[i + 1]) and "|" in lines[i + 1]:
            table = True  # a header row: it ends the paragraph above
            unsure = unsure or opener is not None
            opener = None
        elif opener is not None and not _CONTINUATION.match(line):
            opener, unsure = None, True
        if unsure or not line.strip():
            pass
        elif table:
            cell_start = 0
            for cell_end in [*(m.start() for m in _PIPE.finditer(line)), len(line)]:
                if _pair_runs(line, cell_start, cell_end, offset, spans, None) is not None:
                    unsure = True
                    break
                cell_start = cell_end + 1
        else:
            opener = _pair_runs(line, 0, len(line), offset, spans, opener)
        offset += len(line) + 1
    return spans


def _pair_runs(
    line: str, start: int, end: int, offset: int, spans: list[tuple[int, int]], opener: tuple[int, int] | None
) -> tuple[int, int] | None:
    """Append the code spans closed in ``line[start:end]``; returns the run left open, if any."""
    for m in _BACKTICKS.finditer(line, start, end):
        a, b = m.start(), m.end()
        if opener is not None:
            if b - a == opener[1]:
                spans.append((opener[0], offset + b))
                opener = None
            continue
        backslashes = 0
        while a - backslashes > start and line[a - backslashes - 1] == "\\":
            backslashes += 1
        a += backslashes % 2  # an escaped backtick is literal; the rest of the run may still open a span
        if a < b:
            opener = (offset + a, b - a)
    return opener
