"""What a crawl job reports about itself: state, counts, rate, ETA, failed URLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mcp_web_ingest.crawl.jobs import TERMINAL, JobRow, JobStore

__all__ = ["CrawlStatus", "build_status", "status_dict"]


@dataclass(frozen=True)
class CrawlStatus:
    """Where a crawl job stands."""

    job_id: str
    state: str
    kind: str
    start_url: str
    collection: str
    counts: dict[str, int]
    changes: dict[str, int]
    elapsed_s: float
    pages_per_s: float
    eta_s: float | None
    failed: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    notes: tuple[str, ...] = ()
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """True once the job reached done, partial, failed or cancelled."""
        return self.state in TERMINAL

    def summary(self) -> str:
        """One line for progress messages."""
        c = self.counts
        return (
            f"{self.state}: discovered {c['discovered']}, fetched {c['fetched']}, indexed {c['indexed']}, "
            f"unchanged {c['unchanged']}, failed {c['failed']}, skipped {c['skipped']}"
        )


async def build_status(jobs: JobStore, job: JobRow) -> CrawlStatus:
    """A job's status from its URL counts and timestamps."""
    c = await jobs.counts(job.id)
    start = job.started_at or job.created_at
    end = job.finished_at or datetime.now(UTC)
    elapsed = max(0.0, (end - start).total_seconds())
    done = c.processed
    rate = done / elapsed if elapsed > 0 else 0.0
    pending = c.get("queued") + c.get("fetching")
    eta = pending / rate if rate > 0 and job.state not in TERMINAL else None
    failed = [{"url": u, "reason": r or ""} for u, r in await jobs.urls_in(job.id, ["failed"])]
    skipped = [{"url": u, "reason": r or ""} for u, r in await jobs.urls_in(job.id, ["skipped"])]
    counts = {
        "discovered": c.discovered,
        "queued": c.get("queued"),
        "in_progress": c.get("fetching"),
        "fetched": c.get("indexed") + c.get("unchanged") + c.get("failed"),
        "indexed": c.get("indexed"),
        "unchanged": c.get("unchanged"),
        "failed": c.get("failed"),
        "skipped": c.get("skipped"),
        "removed": c.get("removed"),
        "chunks": c.chunks,
    }
    changes = {k: c.by_change.get(k, 0) for k in ("added", "changed", "unchanged", "removed")}
    return CrawlStatus(
        job.id,
        job.state,
        job.kind,
        job.start_url,
        job.collection,
        counts,
        changes,
        round(elapsed, 2),
        round(rate, 2),
        round(eta, 1) if eta is not None else None,
        failed,
        job.error,
        job.notes,
        skipped,
    )


def status_dict(status: CrawlStatus) -> dict[str, Any]:
    """A plain dict of a status (for JSON output)."""
    return {**status.__dict__, "finished": status.finished}
