"""what_changed: pages added, changed (with their changed sections) and removed since a time, from the change log."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from mcp_web_ingest.config.common import parse_span
from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.ingest.sanitize import clean_text
from mcp_web_ingest.interface.schemas import deep_link
from mcp_web_ingest.storage.records import PageChange, SectionChange

__all__ = ["WhatChangedResult", "parse_since", "what_changed_result"]


class SectionChangeOut(BaseModel):
    """A section of a changed page."""

    change: str = Field(description="added, changed (its text differs) or removed")
    section: str = Field(description="Section path, 'Page › H2 › H3' style (empty: the text before the first heading)")
    deep_link: str = Field(description="The page URL with the section's anchor (the page URL for a removed section)")


class PageChangeOut(BaseModel):
    """A page added, changed or removed."""

    url: str
    title: str
    collection: str
    at: str = Field(description="When the (last) change was recorded (ISO 8601)")
    sections: list[SectionChangeOut] = Field(default_factory=list, description="Changed pages: what changed in them")


class WhatChangedResult(BaseModel):
    """What changed in the index since a time."""

    since: str | None = Field(description="The start of the window (ISO 8601); null: no refresh has run yet")
    since_source: str = Field(description="'given', or 'last refresh' when since was not given")
    added: list[PageChangeOut]
    changed: list[PageChangeOut]
    removed: list[PageChangeOut]
    truncated: bool = Field(description="True when more pages changed than `limit` allowed to list")


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or time (UTC unless it says otherwise), or a span back from now: 90m, 24h, 7d, 2w."""
    now = now or datetime.now(UTC)
    if (span := parse_span(value)) is not None:
        return now - span
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"since={value!r} is neither an ISO 8601 date or time (2026-11-23, 2026-11-23T09:30:00Z) nor a span "
            "back from now (90m, 24h, 7d, 2w)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _net(first: str, last: str) -> str | None:
    """The change a run of changes amounts to: added then removed is nothing."""
    if first == "added":
        return None if last == "removed" else "added"
    return "removed" if last == "removed" else "changed"


def _sections(url: str, runs: list[PageChange]) -> list[SectionChangeOut]:
    seen: dict[tuple[tuple[str, ...], str | None], list[SectionChange]] = {}
    for change in runs:
        for s in change.sections:
            seen.setdefault((s.path, s.anchor), []).append(s)
    out = []
    for (path, anchor), changes in seen.items():
        net = _net(changes[0].change, changes[-1].change)
        if net is not None:
            link = deep_link(url, anchor) if net != "removed" else url
            out.append(SectionChangeOut(change=net, section=clean_text(" › ".join(path)), deep_link=link))
    return out


def what_changed_result(
    changes: list[PageChange], since: datetime | None, since_source: str, limit: int
) -> WhatChangedResult:
    """Fold the log (oldest first) into one net change per page, newest first, at most ``limit`` pages listed."""
    by_page: dict[tuple[str, str], list[PageChange]] = {}
    for change in changes:
        by_page.setdefault((change.collection, change.url), []).append(change)
    buckets: dict[str, list[PageChangeOut]] = {"added": [], "changed": [], "removed": []}
    ordered = sorted(by_page.items(), key=lambda item: item[1][-1].changed_at, reverse=True)
    listed, truncated = 0, False
    for (collection, url), runs in ordered:
        net = _net(runs[0].change, runs[-1].change)
        if net is None:
            continue
        sections = _sections(url, runs) if net == "changed" else []
        if net == "changed" and not sections and runs[0].title == runs[-1].title:
            continue  # changed and changed back
        if listed == limit:
            truncated = True
            break
        listed += 1
        last = runs[-1]
        buckets[net].append(
            PageChangeOut(
                url=url,
                title=clean_text(last.title),
                collection=collection,
                at=last.changed_at.isoformat(),
                sections=sections,
            )
        )
    return WhatChangedResult(
        since=since.isoformat() if since else None,
        since_source=since_source,
        truncated=truncated,
        **buckets,
    )
