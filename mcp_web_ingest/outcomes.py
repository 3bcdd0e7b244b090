"""What indexing one page did (IndexOutcome) and how long each step took (Stopwatch)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["IndexOutcome", "Stopwatch"]


@dataclass(frozen=True)
class IndexOutcome:
    """What indexing one page did."""

    page_id: int
    url: str
    title: str
    chunk_count: int
    unchanged: bool
    collection: str
    reused_vectors: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    change: Literal["added", "changed", "unchanged", "duplicate", "canonical"] = "added"
    links: tuple[str, ...] = ()  # outgoing links of the page (absolute, normalised), for crawling
    duplicate_of: str | None = None  # the identical (or canonical) page's URL when nothing was stored
    canonical_url: str | None = None
    content_format: str = "html"  # the format the stored text was read from
    content_url: str | None = None  # the document it was read from, when not the page's own URL (a Markdown twin)
    carried: tuple[str, ...] = ()  # pages stored from this document for their own URLs (an llms-full.txt's)


class Stopwatch:
    """Milliseconds per named step of indexing one page, and the total."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self._t = time.perf_counter()
        self._start = self._t

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = round((now - self._t) * 1000, 2)
        self._t = now

    def total(self) -> dict[str, float]:
        return {**self.marks, "total": round((time.perf_counter() - self._start) * 1000, 2)}
