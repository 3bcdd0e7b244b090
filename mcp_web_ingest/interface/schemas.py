"""Structured outputs of the tools (pydantic: they become the tools' output schemas) and their builders."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_web_ingest.crawl.manager import CrawlStatus
from mcp_web_ingest.crawl.schedule import Schedule
from mcp_web_ingest.ingest.sanitize import WEB_SCHEMES, clean_markdown, clean_text, safe_fragment, safe_url
from mcp_web_ingest.ingest.versions import version_key
from mcp_web_ingest.models import Hit, Provenance
from mcp_web_ingest.pipeline import IndexOutcome, SearchOutcome

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


class PageResult(BaseModel):
    """Outcome of indexing one page."""

    page_id: int = Field(description="Id of the stored page")
    url: str = Field(description="The page's normalised URL (after redirects)")
    title: str
    collection: str
    chunks: int = Field(description="Number of searchable chunks stored for the page")
    unchanged: bool = Field(
        description="True when the content was identical to the stored version (nothing re-embedded)"
    )
    reused_vectors: int = Field(description="Chunks whose embedding was reused from the previous version")
    timings_ms: dict[str, float] = Field(description="Milliseconds spent per stage")
    content_format: str = Field(
        default="html", description="Format the text was read from: html, markdown, text, rst, pdf, notebook, llms-full"
    )
    content_url: str | None = Field(
        default=None, description="The document the text was read from when not the page's URL (its Markdown twin)"
    )
    carried: list[str] = Field(
        default_factory=list, description="Pages an llms-full.txt carried, stored under their own URLs"
    )


class FailedUrl(BaseModel):
    """A URL a crawl could not index, and why."""

    url: str
    reason: str


class CrawlJobResult(BaseModel):
    """Where a crawl job stands."""

    job_id: str = Field(description="Pass to crawl_status or cancel_crawl")
    state: Literal["queued", "running", "paused", "done", "partial", "failed", "cancelled"] = Field(
        description=(
            "done: every page indexed; partial: finished with failed pages; failed: nothing could be indexed; "
            "paused: waiting for an unreachable vector store, resumes by itself"
        )
    )
    kind: str = Field(description="crawl, or refresh (re-crawl of stored pages)")
    start_url: str
    collection: str
    finished: bool
    counts: dict[str, int] = Field(
        description="discovered, queued, in_progress, fetched, indexed, unchanged, failed, skipped, removed"
    )
    changes: dict[str, int] = Field(description="Pages added, changed, unchanged and removed by this job")
    elapsed_s: float
    pages_per_s: float
    eta_s: float | None = Field(description="Estimated seconds left (None when unknown or finished)")
    failed: list[FailedUrl] = Field(description="Failed URLs with their reason (first 50)")
    skipped: list[FailedUrl] = Field(
        default_factory=list,
        description="Skipped URLs with their reason (first 50): robots.txt, same content or canonical elsewhere, "
        "not HTML, limits",
    )
    error: str | None = Field(default=None, description="Why the job failed or paused")
    notes: list[str] = Field(
        default_factory=list, description="Caveats: robots.txt treated as absent, sitemaps or llms.txt skipped..."
    )


class IndexResult(BaseModel):
    """Result of index_web_page: one page indexed, or a crawl job's progress."""

    kind: Literal["page", "crawl"]
    message: str = Field(description="One-line summary of what happened and what to do next")
    page: PageResult | None = Field(default=None, description="Set when a single page was indexed")
    job: CrawlJobResult | None = Field(default=None, description="Set for a crawl (max_depth > 0 or max_pages > 1)")
    refresh_interval_s: float | None = Field(
        default=None, description="Seconds between the scheduled refreshes of these pages, when they have one"
    )


class LegOut(BaseModel):
    """What one retrieval leg said of a result."""

    leg: str = Field(description="dense (semantic), lexical (full-text) or sparse (SPLADE learned terms)")
    rank: int = Field(description="1-based rank the leg gave the chunk")
    score: float = Field(description="The leg's raw score")


class MatchedSectionOut(BaseModel):
    """Another section of a result's page that matched the query."""

    section: str = Field(description="Section path: Page title › Heading › Subheading")
    deep_link: str = Field(description="URL with the section's fragment")


class ProvenanceOut(BaseModel):
    """Where a result's text came from and how fresh it is."""

    fetched_at: str = Field(description="When the stored text was fetched and indexed (ISO 8601)")
    verified_at: str = Field(description="When the server last confirmed it unchanged or sent it (a 304 counts)")
    last_modified: str | None = Field(description="The server's Last-Modified header, when it sent one")
    content_hash: str = Field(description="SHA-256 of the page's stored text")
    content_format: str = Field(description="Format the text was read from: html, markdown, pdf...")
    version: str | None = Field(default=None, description="The documentation version the page belongs to")
    stale: bool = Field(description="True when not verified within the refresh interval of its source's schedule")


class SearchHitOut(BaseModel):
    """One result, sized for a model's context."""

    rank: int
    url: str
    deep_link: str = Field(description="URL with the fragment of the nearest heading; cite this")
    title: str = Field(description="Page title")
    section: str = Field(description="Section path: Page title › Heading › Subheading")
    text: str = Field(description="The matching chunk in markdown (trimmed to the budget)")
    score: float = Field(description="The page's fused score; higher is better")
    legs: list[LegOut] = Field(description="Ranks each retrieval leg gave this chunk")
    also_matched: list[MatchedSectionOut] = Field(
        default_factory=list, description="Other sections of this page that matched, on the page's first result"
    )
    rerank_score: float | None = Field(default=None, description="Cross-encoder relevance, when results were reranked")
    collection: str
    provenance: ProvenanceOut | None = Field(default=None, description="Where the text came from and how fresh it is")


class SearchResult(BaseModel):
    """Results of a search."""

    query: str
    mode: str
    legs_used: list[str]
    took_ms: float
    timings_ms: dict[str, float] = Field(
        default_factory=dict,
        description="Milliseconds per step: each leg (query encoding included), symbol, fusion, rerank, results",
    )
    truncated: bool = Field(description="True when result texts were trimmed to fit max_chars")
    reranked: bool = Field(default=False, description="True when a cross-encoder reordered the fused candidates")
    notes: list[str] = Field(default_factory=list, description="Caveats about how this search was served")
    results: list[SearchHitOut]


class HealthResult(BaseModel):
    """Component status, counts and configuration of the server."""

    status: Literal["ok", "degraded", "error"]
    version: str
    pipeline: str
    components: dict[str, Any]
    counts: dict[str, int]
    embedding: dict[str, Any]


class RefreshOut(BaseModel):
    """A scheduled refresh: which pages, how often, when next, and how the last run went."""

    url_prefix: str = Field(description="Pages refreshed: those whose URL starts with this ('' = the collection)")
    interval_s: float
    next_run_at: str = Field(description="ISO 8601")
    last_run_at: str | None = Field(description="When the last scheduled refresh started (ISO 8601)")
    last_state: str | None = Field(description="The last refresh job's state: running, done, partial, failed...")


class SourceOut(BaseModel):
    """Indexed pages of one domain in one collection."""

    collection: str
    domain: str
    site: str = Field(description="scheme://host[:port] of these pages; a url_prefix for refresh_source or search")
    pages: int
    chunks: int
    last_crawled_at: str | None
    oldest_verified_at: str | None = Field(
        default=None, description="When the least recently fetched or confirmed page of these was (ISO 8601)"
    )
    last_job_state: str | None
    versions: list[str] = Field(default_factory=list, description="Documentation versions of these pages, newest first")
    refresh: list[RefreshOut] = Field(default_factory=list, description="Scheduled refreshes covering these pages")


class SourcesResult(BaseModel):
    """Every indexed source."""

    sources: list[SourceOut]


class DeleteResult(BaseModel):
    """What delete_source removed."""

    collection: str
    domain: str | None
    url_prefix: str | None
    pages_deleted: int


def page_result(o: IndexOutcome) -> PageResult:
    """Tool output for an IndexOutcome."""
    return PageResult(
        page_id=o.page_id,
        url=o.url,
        title=clean_text(o.title),
        collection=o.collection,
        chunks=o.chunk_count,
        unchanged=o.unchanged,
        reused_vectors=o.reused_vectors,
        timings_ms=o.timings_ms,
        content_format=o.content_format,
        content_url=o.content_url,
        carried=list(o.carried),
    )


def page_index_result(o: IndexOutcome) -> IndexResult:
    """index_web_page's result for one page."""
    what = "unchanged (nothing re-embedded)" if o.unchanged else f"indexed ({o.chunk_count} chunks)"
    return IndexResult(kind="page", message=f"{o.url} {what}: {o.title!r}", page=page_result(o))


def job_result(s: CrawlStatus) -> CrawlJobResult:
    """Tool output for a CrawlStatus."""
    return CrawlJobResult(
        job_id=s.job_id,
        state=s.state,
        kind=s.kind,
        start_url=s.start_url,
        collection=s.collection,  # type: ignore[arg-type]
        finished=s.finished,
        counts=s.counts,
        changes=s.changes,
        elapsed_s=s.elapsed_s,
        pages_per_s=s.pages_per_s,
        eta_s=s.eta_s,
        failed=[FailedUrl(**f) for f in s.failed],
        skipped=[FailedUrl(**f) for f in s.skipped],
        error=s.error,
        notes=list(s.notes),
    )


def crawl_index_result(s: CrawlStatus) -> IndexResult:
    """index_web_page's result for a crawl, finished or still running."""
    if s.finished:
        message = f"Crawl {s.state}: {s.summary()}"
    else:
        message = f"Crawl still running ({s.summary()}); call crawl_status(job_id={s.job_id!r}) to follow it"
    return IndexResult(kind="crawl", message=message, job=job_result(s))


def _hit_out(rank: int, h: Hit) -> SearchHitOut:
    """One result with every shown string inert in a browser, whatever was stored (rows from before sanitising)."""
    url = safe_url(h.url, schemes=WEB_SCHEMES, escape=False) or ""  # stored URLs are http(s): validate_url
    return SearchHitOut(
        rank=rank,
        url=url,
        deep_link=deep_link(url, h.anchor),
        title=clean_text(h.title),
        section=" › ".join(clean_text(s) for s in h.section_path),
        text=clean_markdown(h.text),
        score=round(h.score, 6),
        collection=h.collection,
        legs=[LegOut(leg=leg.leg, rank=leg.rank, score=round(leg.score, 6)) for leg in h.legs],
        rerank_score=round(h.rerank_score, 6) if h.rerank_score is not None else None,
        also_matched=[_section_out(url, section, anchor) for section, anchor in h.also_matched],
        provenance=_provenance_out(h.provenance) if h.provenance is not None else None,
    )


def _provenance_out(p: Provenance) -> ProvenanceOut:
    return ProvenanceOut(
        fetched_at=p.fetched_at.isoformat(),
        verified_at=p.verified_at.isoformat(),
        last_modified=clean_text(p.last_modified) if p.last_modified else None,
        content_hash=p.content_hash,
        content_format=p.content_format,
        version=p.version,
        stale=p.stale,
    )


def deep_link(url: str, anchor: str | None) -> str:
    """A (safe) page URL with the heading's fragment, made inert for a browser; the URL alone without one."""
    fragment = safe_fragment(anchor)
    return f"{url}#{fragment}" if url and fragment else url


def _section_out(url: str, section: str, anchor: str | None) -> MatchedSectionOut:
    return MatchedSectionOut(section=clean_text(section), deep_link=deep_link(url, anchor))


def search_result(o: SearchOutcome) -> SearchResult:
    """Tool output for a SearchOutcome."""
    return SearchResult(
        query=o.query,
        mode=o.mode,
        legs_used=list(o.legs_used),
        took_ms=o.took_ms,
        timings_ms=dict(o.timings_ms),
        truncated=o.truncated,
        reranked=o.reranked,
        notes=list(o.notes),
        results=[_hit_out(i, h) for i, h in enumerate(o.hits, start=1)],
    )


def _refresh_out(s: Schedule) -> RefreshOut:
    return RefreshOut(
        url_prefix=s.url_prefix,
        interval_s=s.interval_s,
        next_run_at=s.next_run_at.isoformat(),
        last_run_at=s.last_run_at.isoformat() if s.last_run_at else None,
        last_state=s.last_state,
    )


def sources_result(rows: list[dict[str, Any]], schedules: list[Schedule]) -> SourcesResult:
    """Tool output for list_sources: each source with the refresh schedules covering its pages."""

    def covering(r: dict[str, Any]) -> list[RefreshOut]:
        return [
            _refresh_out(s)
            for s in schedules
            if s.collection == r["collection"] and (not s.url_prefix or urlsplit(s.url_prefix).hostname == r["domain"])
        ]

    return SourcesResult(
        sources=[
            SourceOut(
                **{
                    **r,
                    "last_crawled_at": r["last_crawled_at"].isoformat() if r["last_crawled_at"] else None,
                    "oldest_verified_at": r["oldest_verified_at"].isoformat() if r["oldest_verified_at"] else None,
                    "versions": sorted(r["versions"], key=version_key, reverse=True),
                    "refresh": covering(r),
                }
            )
            for r in rows
        ]
    )
