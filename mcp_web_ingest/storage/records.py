"""What the catalog and the vector indexes share: collection names, record types, search filters, error translation."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psycopg
from psycopg_pool import PoolTimeout

from mcp_web_ingest.errors import InvalidInputError, StoreError
from mcp_web_ingest.models import Chunk, Provenance, Section, SparseVec

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_collection(name: str | None) -> str:
    """A collection name, defaulting to 'default'; letters, digits, '.', '_' and '-' only."""
    if name is None or name == "":
        return "default"
    if not COLLECTION_NAME.match(name):
        raise InvalidInputError(
            f"Invalid collection name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class SearchFilter:
    """Restrictions applied to every retrieval leg."""

    collection: str | None = None
    url_prefix: str | None = None
    symbol: str | None = None  # only chunks defining or using this symbol
    versions: tuple[tuple[str, str], ...] | None = None  # allowed (collection, version); unlabelled pages always pass


@dataclass(frozen=True)
class PageRecord:
    """What is stored about a page besides its chunks."""

    url: str
    title: str
    content_hash: str
    pipeline: str
    final_url: str | None = None
    canonical_url: str | None = None
    description: str | None = None
    language: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    http_status: int | None = None
    sections: tuple[Section, ...] = ()  # the extracted markdown, kept for read_page
    content_format: str = "html"  # the format the text was read from
    content_url: str | None = None  # the document it was read from, when not the page's own URL
    version: str | None = None  # the documentation version the page belongs to
    version_source: str | None = None  # "given" (by the caller) or "url" (read from the URL's path)

    @property
    def domain(self) -> str:
        """Host of the URL, lower-case."""
        return (urlsplit(self.url).hostname or "").lower()


@dataclass(frozen=True)
class StoredPage:
    """A page row as read back."""

    id: int
    url: str
    title: str
    content_hash: str
    chunk_count: int
    pipeline: str
    crawled_at: datetime
    etag: str | None = None
    last_modified: str | None = None
    content_format: str = "html"
    content_url: str | None = None


@dataclass(frozen=True)
class StoredSection:
    """One section of a stored page's markdown."""

    level: int
    heading: str
    anchor: str | None
    path: tuple[str, ...]
    markdown: str


@dataclass(frozen=True)
class StoredDocument:
    """A stored page as its markdown sections, for reading it back."""

    page_id: int
    url: str
    title: str
    collection: str
    crawled_at: datetime
    indexed_at: datetime
    sections: tuple[StoredSection, ...]
    from_chunks: bool = False  # stored before sections were kept: rebuilt from the chunks
    content_format: str = "html"
    content_url: str | None = None


@dataclass(frozen=True)
class SectionChange:
    """A section of a changed page that was added, removed or whose text changed."""

    change: str  # added, changed, removed
    path: tuple[str, ...]  # headings down to the section (page title excluded)
    anchor: str | None


@dataclass(frozen=True)
class PageChange:
    """One logged change of a page: added, changed (with its sections) or removed."""

    collection: str
    url: str
    title: str
    change: str  # added, changed, removed
    sections: tuple[SectionChange, ...]
    changed_at: datetime


@dataclass(frozen=True)
class StoredChunk:
    """A chunk row joined with its page, for building results."""

    id: int
    page_id: int
    url: str
    title: str
    collection: str
    section_path: tuple[str, ...]
    anchor: str | None
    text: str
    content_hash: str
    provenance: Provenance | None = None


@dataclass(frozen=True)
class ChunkEntry:
    """What a vector index holds of one chunk: its id (the catalog's), where it belongs, its text and vectors."""

    id: int
    collection: str
    url: str
    domain: str
    context: str  # the section path joined, as the catalog stores it
    text: str
    vector: np.ndarray
    splade: SparseVec | None = None


@dataclass(frozen=True)
class ChunkPage:
    """The page a chunk belongs to, with what search weighs about the page."""

    page_id: int
    code_share: float  # share of the page's text in code blocks


@dataclass(frozen=True)
class WrittenPage:
    """A page the catalog committed: its id and the ids of the chunks it replaced."""

    page_id: int
    replaced: tuple[int, ...]


@dataclass(frozen=True)
class Deleted:
    """What a catalog delete removed: pages, and the chunks' ids when the caller asked for them."""

    pages: int
    chunk_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class RepairReport:
    """What a vector index's `repair` found (and fixed unless it was a dry run)."""

    chunks: int = 0
    points: int = 0
    missing: tuple[int, ...] = ()  # chunk rows without a point
    orphans: tuple[int, ...] = ()  # points without a chunk row
    mismatched: tuple[int, ...] = ()  # points whose payload names another page
    fixed: bool = False

    @property
    def in_sync(self) -> bool:
        """True when the catalog and the index hold exactly the same chunks."""
        return not (self.missing or self.orphans or self.mismatched)

    @classmethod
    def compare(cls, rows: dict[int, str], points: dict[int, str | None]) -> RepairReport:
        """The drift between chunk rows (id -> page URL) and index points (id -> the URL in their payload)."""
        return cls(
            chunks=len(rows),
            points=len(points),
            missing=tuple(sorted(set(rows) - set(points))),
            orphans=tuple(sorted(set(points) - set(rows))),
            mismatched=tuple(sorted(i for i in set(rows) & set(points) if points[i] != rows[i])),
        )


def check_counts(chunks: Sequence[Chunk], vectors: Sequence[np.ndarray], sparse: Sequence[SparseVec] | None) -> None:
    """Refuse a write whose chunk, vector and sparse-vector lists do not line up."""
    if len(chunks) != len(vectors) or (sparse is not None and len(sparse) != len(chunks)):
        raise StoreError("Internal error: chunk and vector counts differ")


def search_filter_sql(where: SearchFilter) -> tuple[str, list[Any]]:
    """SQL conditions (each after " AND ", over chunks c and pages p) and parameters restricting a query to where."""
    clauses: list[str] = []
    params: list[Any] = []
    if where.collection:
        clauses.append("p.collection_id = (SELECT id FROM collections WHERE name = %s)")
        params.append(where.collection)
    if where.url_prefix:
        escaped = where.url_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("p.url LIKE %s")
        params.append(escaped + "%")
    if where.symbol:
        clauses.append("c.id IN (SELECT chunk_id FROM chunk_symbols WHERE key = lower(%s))")
        params.append(where.symbol)
    if where.versions is not None:
        clauses.append(
            "(p.version IS NULL OR (p.collection_id, p.version) IN (SELECT co.id, v.version FROM "
            "unnest(%s::text[], %s::text[]) AS v(collection, version) JOIN collections co ON co.name = v.collection))"
        )
        params += [[c for c, _ in where.versions], [v for _, v in where.versions]]
    return "".join(" AND " + c for c in clauses), params


def tsquery_text_is_strict(query: str) -> bool:
    """Whether the user wrote search operators (quotes, -exclusion) that must keep websearch semantics."""
    # A plain "or" needs no strict mode: the relaxed query ORs every word anyway, and strict mode would AND the rest.
    return '"' in query or re.search(r"(^|\s)-\w", query) is not None


def translate_errors(cls: type) -> type:
    """Wrap every public coroutine of cls so database failures leave as StoreError (a restart, a lost connection)."""
    # vars(cls): only the class's own coroutines, so each class (mixins too) needs the decorator.
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(fn):
            continue

        @functools.wraps(fn)
        async def wrapper(*args: Any, __fn: Any = fn, **kwargs: Any) -> Any:
            try:
                return await __fn(*args, **kwargs)
            except (psycopg.Error, PoolTimeout) as exc:
                raise StoreError(f"Database error ({type(exc).__name__}): {exc}; try again in a moment") from exc

        setattr(cls, name, wrapper)
    return cls


@dataclass(frozen=True)
class PageListing:
    """One stored page as a directory lists it (no text)."""

    page_id: int
    collection: str
    url: str
    title: str
    indexed_at: datetime


@dataclass(frozen=True)
class CollectionListing:
    """One collection with its number of pages."""

    collection_id: int
    name: str
    pages: int


@dataclass(frozen=True)
class ChangeEvent:
    """One row of the page change log, by its increasing id (what a watcher polls)."""

    id: int
    collection: str
    url: str
    change: str  # added, changed, removed


@dataclass(frozen=True)
class Suggestions:
    """Values for a completion, at most the limit asked; total when counted exactly."""

    values: tuple[str, ...]
    total: int | None
    has_more: bool
