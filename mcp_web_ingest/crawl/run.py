"""The state of one crawl job while this process runs it, and the pause it takes while the vector store is down."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from mcp_web_ingest.crawl.discovery import JobNotes, RobotsCache
from mcp_web_ingest.crawl.jobs import JobRow
from mcp_web_ingest.crawl.scope import CrawlScope
from mcp_web_ingest.crawl.status import CrawlStatus
from mcp_web_ingest.errors import WebIngestError

__all__ = ["STORE_RETRY_MAX_S", "STORE_RETRY_MIN_S", "JobRun"]

log = logging.getLogger(__name__)

STORE_RETRY_MIN_S = 1.0  # a paused crawl probes the store this often at first...
STORE_RETRY_MAX_S = 10.0  # ...backing off to this


class JobRun:
    """The state of one job while this process runs it."""

    def __init__(self, job: JobRow, scope: CrawlScope) -> None:
        self.job = job
        self.scope = scope
        self.cancelled = asyncio.Event()
        self.changed = asyncio.Event()
        self.in_flight = 0
        self.notes = JobNotes()  # caveats for the job's status: robots.txt treated as absent, sitemaps skipped
        self.robots: RobotsCache | None = None
        self.paused: str | None = None  # why the job waits (the vector store is unreachable), while it does

    def live_status(self, status: CrawlStatus) -> CrawlStatus:
        """The stored status of an unfinished job with what only its runner knows: a pause, the notes so far."""
        if status.finished:
            return status
        if self.paused:
            why = f"paused: {self.paused} — the job resumes by itself when the store answers; nothing is lost"
            return dataclasses.replace(status, state="paused", error=why)
        return dataclasses.replace(status, notes=self.notes.all())

    async def wait_for_store(self, ping: Callable[[], Awaitable[object]], reason: str) -> None:
        """Pause this worker until the stores answer again (or the job is cancelled), probing with back-off."""
        self.paused = reason
        log.warning("crawl %s paused: %s", self.job.id, reason)
        delay = STORE_RETRY_MIN_S
        while not self.cancelled.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.cancelled.wait(), delay)
            try:
                await ping()
            except WebIngestError as exc:
                self.paused = str(exc)
                delay = min(delay * 2, STORE_RETRY_MAX_S)
                continue
            break
        if self.paused is not None:
            log.info("crawl %s: the store answers again, resuming", self.job.id)
        self.paused = None
