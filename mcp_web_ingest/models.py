"""Frozen dataclasses for the data that crosses pipeline stages."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


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
    text: str  # decoded body
    encoding: str
    etag: str | None = None
    last_modified: str | None = None
    elapsed_s: float = 0.0


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

    @property
    def deep_link(self) -> str:
        """The page URL with the fragment of the nearest heading, when there is one."""
        return f"{self.url}#{self.anchor}" if self.anchor else self.url
