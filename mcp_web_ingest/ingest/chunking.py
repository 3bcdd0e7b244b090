"""Split extracted pages into embedding-sized chunks: heading-aware (``chunk_page``) or fixed windows (``chunk_fixed``).

Token counts are an approximation (see ``count_tokens``); joining pieces with whitespace adds no tokens, so the
counts of blocks add up exactly to the count of the chunk built from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.ingest.sanitize import clean_markdown
from mcp_web_ingest.models import Chunk, ExtractedPage, sha256_hex

__all__ = ["chunk_fixed", "chunk_page", "count_tokens", "strip_link_targets"]

_LEAD_MAX_TOKENS = 4  # a text block this short at a chunk's end is a title for what follows
_TOKEN = re.compile(r"\w+|[^\w\s]")
_FENCE_OPEN = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s")
# A sentence ends at . ! ? (optionally followed by a closing quote/bracket) before whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+")
_LINE_END = re.compile(r"\n+")
_WORD_END = re.compile(r"\s+")
# [text](target) and ![alt](src), with one level of brackets inside the text and parentheses inside the target.
_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"]*\")?\)")


def count_tokens(text: str) -> int:
    """Approximate word-piece tokens: words and single punctuation marks (real tokenizers split long words more)."""
    return len(_TOKEN.findall(text))


def strip_link_targets(markdown: str) -> str:
    """Replace markdown links and images by their text outside fenced code (URLs are noise to an embedder)."""
    return "\n\n".join(b.text if b.kind == "code" else _strip_links(b.text) for b in _blocks(markdown))


def _strip_links(text: str) -> str:
    # One pass leaves the inner link of [![alt](src)](href); three cover real nesting and stay linear.
    for _ in range(3):
        stripped = _LINK.sub(r"\1", text)
        if stripped == text:
            break
        text = stripped
    return text


@dataclass(frozen=True)
class _Block:
    text: str
    kind: str  # "code", "table", "list" or "text"
    tokens: int


def _block(text: str, kind: str) -> _Block:
    return _Block(text, kind, count_tokens(text))


def _blocks(markdown: str) -> list[_Block]:
    """Split markdown into fenced code blocks and blank-line separated paragraphs, lists and tables."""
    blocks: list[_Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            text = "\n".join(para).strip("\n")
            first = text.lstrip()
            kind = "table" if first.startswith("|") else "list" if _LIST_ITEM.match(first) else "text"
            blocks.append(_block(text, kind))
            para.clear()

    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _FENCE_OPEN.match(line)
        if m:
            flush()
            fence = m.group(2)
            j = i + 1
            while j < len(lines):
                closing = lines[j].strip()
                if closing and closing == fence[0] * len(closing) and len(closing) >= len(fence):
                    break
                j += 1
            blocks.append(_block("\n".join(lines[i : j + 1]), "code"))
            i = j + 1
            continue
        if line.strip():
            para.append(line)
        else:
            flush()
        i += 1
    flush()
    return blocks


def _segments(text: str, boundary: re.Pattern[str]) -> list[str]:
    """Cut text after each boundary match; the pieces concatenate back to the original text."""
    out, start = [], 0
    for m in boundary.finditer(text):
        if m.end() > start and m.start() > start:
            out.append(text[start : m.end()])
            start = m.end()
    if start < len(text):
        out.append(text[start:])
    return out


def _pack(units: list[str], limit: int) -> list[str]:
    """Greedily join consecutive units (each keeps its trailing separator) into pieces of at most ``limit`` tokens."""
    pieces: list[str] = []
    current, tokens = "", 0
    for unit in units:
        n = count_tokens(unit)
        if current and tokens + n > limit:
            pieces.append(current)
            current, tokens = "", 0
        current += unit
        tokens += n
    if current:
        pieces.append(current)
    return [p.strip() for p in pieces if p.strip()]


def _split_prose(text: str, limit: int, by_line: bool) -> list[str]:
    """Split a paragraph at sentence (or line) boundaries, and over-long sentences at word boundaries."""
    units: list[str] = []
    for unit in _segments(text, _LINE_END if by_line else _SENTENCE_END):
        if count_tokens(unit) > limit:
            units.extend(_segments(unit, _WORD_END))
        else:
            units.append(unit)
    return _pack(units, limit)


def _split_code(block: _Block, limit: int) -> list[_Block]:
    """Split a fenced block on line boundaries into several blocks, each re-opened with the same fence line."""
    lines = block.text.split("\n")
    opener = lines[0]
    m = _FENCE_OPEN.match(opener)
    closer = (m.group(1) + m.group(2)) if m else "```"
    body = lines[1:-1] if len(lines) > 1 and lines[-1].strip() == closer.strip() else lines[1:]
    room = max(1, limit - count_tokens(opener) - count_tokens(closer))
    out: list[_Block] = []
    current: list[str] = []
    tokens = 0
    for line in body:
        n = count_tokens(line)
        if current and tokens + n > room:
            out.append(_block("\n".join([opener, *current, closer]), "code"))
            current, tokens = [], 0
        current.append(line)
        tokens += n
    if current:
        out.append(_block("\n".join([opener, *current, closer]), "code"))
    return out


def _split_block(block: _Block, limit: int) -> list[_Block]:
    """Blocks of at most ``limit`` tokens, except a single line or word that cannot be split further."""
    if block.tokens <= limit:
        return [block]
    if block.kind == "code":
        return _split_code(block, limit)
    if block.kind == "table":
        lines = block.text.split("\n")
        # Repeat the header row and its separator in every piece so each piece is still a readable table.
        header = lines[:2] if len(lines) > 2 and set(lines[1].replace(" ", "")) <= set("|-:") else []
        room = max(1, limit - count_tokens("\n".join(header)))
        rows: list[str] = []
        for line in lines[len(header) :]:
            # A row longer than a chunk can only be cut between words (it stops being a table row there).
            rows.extend(_segments(line + "\n", _WORD_END) if count_tokens(line) > room else [line + "\n"])
        return [_block("\n".join([*header, piece]), "table") for piece in _pack(rows, room)]
    return [_block(p, block.kind) for p in _split_prose(block.text, limit, by_line=block.kind == "list")]


def _tail(block: _Block, overlap_tokens: int) -> _Block | None:
    """The block's last whole sentences (lines for lists/tables) within ``overlap_tokens``, else its last words."""
    if overlap_tokens <= 0 or block.kind == "code":  # never start a chunk in the middle of a code block
        return None
    units = _segments(block.text, _SENTENCE_END if block.kind == "text" else _LINE_END)
    kept: list[str] = []
    tokens = 0
    for unit in reversed(units):
        n = count_tokens(unit)
        if tokens + n > overlap_tokens:
            break
        kept.insert(0, unit)
        tokens += n
    if not kept:
        for word in reversed(block.text.split()):
            n = count_tokens(word)
            if tokens + n > overlap_tokens:
                break
            kept.insert(0, word + " ")
            tokens += n
    text = "".join(kept).strip()
    return _block(text, "text") if text else None


def _pack_blocks(blocks: list[_Block], max_tokens: int, overlap_tokens: int) -> list[str]:
    """Greedily fill chunks with whole blocks; a new chunk opens with the previous chunk's prose tail as overlap."""
    limit = max_tokens - overlap_tokens if overlap_tokens < max_tokens // 2 else max_tokens
    pieces = [piece for block in blocks for piece in _split_block(block, max(1, limit))]
    texts: list[str] = []
    current: list[_Block] = []
    tokens = 0
    own_start = 0  # index of the first block of current that is not overlap from the previous chunk
    for piece in pieces:
        if not current or tokens + piece.tokens <= max_tokens:
            current.append(piece)
            tokens += piece.tokens
            continue
        if (
            len(current) > own_start  # the last block is the chunk's own, not overlap
            and current[-1].kind != "code"
            and (current[-1].text.rstrip().endswith(":") or current[-1].tokens <= _LEAD_MAX_TOKENS)
            and current[-1].tokens + piece.tokens <= max_tokens
        ):
            # "For example:" or an admonition title ("Note") belongs with what it introduces, not at the end
            # of the previous chunk.
            lead = current.pop()
            if len(current) > own_start:  # else only overlap is left: drop it rather than emit it alone
                texts.append("\n\n".join(b.text for b in current))
            current, tokens, own_start = [lead, piece], lead.tokens + piece.tokens, 0
            continue
        texts.append("\n\n".join(b.text for b in current))
        tail = _tail(current[-1], overlap_tokens)
        if tail is not None and tail.tokens + piece.tokens <= max_tokens:
            current, tokens, own_start = [tail, piece], tail.tokens + piece.tokens, 1
        else:
            current, tokens, own_start = [piece], piece.tokens, 0
    if current:
        texts.append("\n\n".join(b.text for b in current))
    return [t for t in (t.strip("\n") for t in texts) if t.strip()]


def _make_chunk(ordinal: int, text: str, section_path: tuple[str, ...], anchor: str | None) -> Chunk:
    # Cutting and link stripping can undo what made the text inert (a code span split in two, "<" + "[x](u)" +
    # "script>" becoming "<script>"), so every chunk gets the last sanitising pass again.
    text = clean_markdown(text)
    chunk = Chunk(ordinal=ordinal, text=text, section_path=section_path, anchor=anchor, token_count=count_tokens(text))
    return replace(chunk, content_hash=sha256_hex(chunk.embed_text))


def _check_sizes(max_tokens: int, overlap_tokens: int) -> int:
    """Validate the sizes; returns the overlap capped at half a chunk so every chunk makes progress."""
    if max_tokens < 1:
        raise InvalidInputError(f"max_tokens must be at least 1 (got {max_tokens}).")
    if overlap_tokens < 0:
        raise InvalidInputError(f"overlap_tokens must be 0 or more (got {overlap_tokens}).")
    return min(overlap_tokens, max_tokens // 2)


def chunk_page(
    page: ExtractedPage, max_tokens: int = 256, overlap_tokens: int = 32, *, keep_links: bool = False
) -> list[Chunk]:
    """Heading-aware chunks of a page: one section's blocks packed up to ``max_tokens``, code blocks kept whole.

    Each chunk carries ``(page.title, *section.path)`` and the section's anchor (or its nearest ancestor's).
    Sections with an empty body are skipped; their heading still appears in the path of the sections below.
    Link targets are dropped from the chunk text unless ``keep_links`` (they were ~38 % of the characters of
    the Python docs' markdown and carry little meaning for an embedder).
    """
    overlap_tokens = _check_sizes(max_tokens, overlap_tokens)
    chunks: list[Chunk] = []
    ancestors: list[tuple[int, str | None]] = []  # (level, anchor) of the open headings above the section
    for section in page.sections:
        while ancestors and ancestors[-1][0] >= section.level:
            ancestors.pop()
        anchor = section.anchor or next((a for _, a in reversed(ancestors) if a), None)
        if section.level > 0:
            ancestors.append((section.level, section.anchor))
        path = section.path[1:] if section.path and section.path[0] == page.title else section.path
        section_path = (page.title, *path) if page.title else tuple(path)
        body = section.markdown if keep_links else clean_markdown(strip_link_targets(section.markdown))
        for text in _pack_blocks(_blocks(body), max_tokens, overlap_tokens):
            chunks.append(_make_chunk(len(chunks), text, section_path, anchor))
    if not chunks:
        # A page of headings only: index the headings rather than nothing.
        text = "\n".join(s.heading for s in page.sections if s.heading.strip())
        for piece in _pack_blocks(_blocks(text), max_tokens, overlap_tokens):
            chunks.append(_make_chunk(len(chunks), piece, (page.title,) if page.title else (), None))
    return chunks


def chunk_fixed(text: str, title: str, max_tokens: int = 256, overlap_tokens: int = 32) -> list[Chunk]:
    """Legacy fixed windows of ``max_tokens`` approximate tokens split on whitespace, no heading context."""
    overlap_tokens = _check_sizes(max_tokens, overlap_tokens)
    words = text.split()
    counts = [count_tokens(w) for w in words]
    chunks: list[Chunk] = []
    start = 0
    while start < len(words):
        end, tokens = start, 0
        while end < len(words) and (end == start or tokens + counts[end] <= max_tokens):
            tokens += counts[end]
            end += 1
        chunks.append(_make_chunk(len(chunks), " ".join(words[start:end]), (title,), None))
        if end >= len(words):
            break
        # Step back over whole words worth at most overlap_tokens, always moving forward at least one word.
        back, back_tokens = end, 0
        while back - 1 > start and back_tokens + counts[back - 1] <= overlap_tokens:
            back -= 1
            back_tokens += counts[back]
        start = back
    return chunks
