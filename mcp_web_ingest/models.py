"""Frozen dataclasses for the data that crosses pipeline stages."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of a text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FetchedPage:
    """A document fetched over HTTP, decoded to text."""

    url: str  # the URL asked for (normalised)
    final_url: str  # after redirects
    status: int
    content_type: str  # media type only, e.g. "text/html"
    text: str  # decoded body ("" for a binary format)
    encoding: str
    etag: str | None = None
    last_modified: str | None = None
    elapsed_s: float = 0.0
    format: str = "html"  # html, markdown, text, rst, pdf, notebook, llms-full (ingest/formats/detect.py)
    body: bytes = b""  # the raw body of a binary format (PDF)


@dataclass(frozen=True)
class Section:
    """A run of page content under one heading (level 0: content before the first heading)."""

    level: int
    heading: str
    anchor: str | None  # fragment id of the heading, for deep links
    markdown: str  # body below the heading, without the heading line itself
    path: tuple[str, ...]  # headings from the top of the page down to this one (page title excluded)


@dataclass(frozen=True)
class ExtractedPage:
    """The main content of a page as markdown sections, with its metadata."""

    title: str
    sections: tuple[Section, ...]
    canonical_url: str | None = None
    language: str | None = None
    description: str | None = None
    markdown_twin: str | None = None  # <link rel="alternate" type="text/markdown">: the page written as Markdown

    @property
    def markdown(self) -> str:
        """The whole page as one markdown document."""
        parts: list[str] = []
        for s in self.sections:
            if s.level > 0 and s.heading:
                parts.append("#" * s.level + " " + s.heading)
            if s.markdown:
                parts.append(s.markdown)
        return "\n\n".join(parts)

    @property
    def content_hash(self) -> str:
        """Hash of title + markdown: equal hashes mean nothing to re-index."""
        return sha256_hex(self.title + "\n" + self.markdown)


@dataclass(frozen=True)
class Chunk:
    """A piece of a page sized for embedding, with the headings it sits under."""

    ordinal: int
    text: str
    section_path: tuple[str, ...]  # page title, then the headings above the chunk
    anchor: str | None
    token_count: int
    content_hash: str = field(default="")

    @property
    def embed_text(self) -> str:
        """The text given to the embedder: the section path as context, then the chunk."""
        if not self.section_path:
            return self.text
        return " › ".join(self.section_path) + "\n\n" + self.text


@dataclass(frozen=True)
class LegRank:
    """The rank (1-based) and raw score a retrieval leg gave a chunk."""

    leg: str
    rank: int
    score: float


@dataclass(frozen=True)
class Provenance:
    """Where a result's text came from and how fresh it is."""

    fetched_at: datetime  # when the stored text was fetched (and indexed)
    verified_at: datetime  # when the server last confirmed it (a 304 or an unchanged page counts)
    last_modified: str | None  # the server's Last-Modified, when it sent one
    content_hash: str  # the page's content hash
    content_format: str  # html, markdown, pdf...
    version: str | None = None  # the documentation version the page belongs to
    stale: bool = False  # not verified within the refresh interval of a schedule covering it


@dataclass(frozen=True)
class Hit:
    """One search result: a chunk with its page, citation and scores."""

    chunk_id: int
    page_id: int
    url: str
    title: str
    section_path: tuple[str, ...]
    anchor: str | None
    text: str
    score: float
    legs: tuple[LegRank, ...] = ()
    collection: str = "default"
    rerank_score: float | None = None  # the cross-encoder's score, when the results were reranked
    also_matched: tuple[tuple[str, str | None], ...] = ()  # (section path, anchor) of the page's other matches
    provenance: Provenance | None = None

    @property
    def deep_link(self) -> str:
        """The page URL with the fragment of the nearest heading, when there is one."""
        return f"{self.url}#{self.anchor}" if self.anchor else self.url


@dataclass(frozen=True)
class SparseVec:
    """A sparse vector: strictly increasing term ids, their (non-zero) weights, and the vocabulary size."""

    indices: tuple[int, ...]
    values: tuple[float, ...]
    dim: int

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError(f"{len(self.indices)} indices but {len(self.values)} values")
        if any(b <= a for a, b in zip(self.indices, self.indices[1:], strict=False)):
            raise ValueError("indices must be strictly increasing")
        if self.indices and (self.indices[0] < 0 or self.indices[-1] >= self.dim):
            raise ValueError(f"indices must lie in [0, {self.dim})")

    @property
    def nnz(self) -> int:
        """Number of non-zero entries."""
        return len(self.indices)

    def dot(self, other: SparseVec) -> float:
        """Inner product (the SPLADE relevance score)."""
        weights = dict(zip(other.indices, other.values, strict=True))
        return sum(v * weights.get(i, 0.0) for i, v in zip(self.indices, self.values, strict=True))

    def to_pgvector(self) -> Any:
        """The pgvector SparseVector of this vector (for a sparsevec column)."""
        from pgvector import SparseVector

        return SparseVector(dict(zip(self.indices, self.values, strict=True)), self.dim)


@dataclass(frozen=True)
class Symbol:
    """A code symbol that a chunk defines or uses."""

    name: str  # fully qualified when known: asyncio.gather, json.JSONEncoder.default
    kind: str  # function, class, method, type, constant, attribute, variable, module, table, extension...
    language: str  # python, javascript, sql, c... ("unknown" for fragments no lexer took)
    role: str  # "defines" or "uses"


# What separates the parts of a qualified symbol name: Python/JS dots, C++/Rust ::, Ruby #, C ->.
SYMBOL_SEPARATOR = re.compile(r"\.|::|#|->")


def symbol_keys(name: str) -> list[str]:
    """Lookup keys of a symbol: the lower-cased full name, then each shorter suffix after a separator."""
    full = name.strip().strip("`").lstrip("@").removesuffix("()").lower()
    keys = [full] + [full[m.end() :] for m in SYMBOL_SEPARATOR.finditer(full)]
    return list(dict.fromkeys(k for k in keys if k))


_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.S)


def code_share(texts: Sequence[str]) -> float:
    """Share of the characters of markdown texts that sit in fenced code blocks (0 for no text)."""
    total = sum(len(t) for t in texts)
    if not total:
        return 0.0
    return sum(len(m.group(0)) for t in texts for m in _FENCED_CODE.finditer(t)) / total
