"""Whole-site crawls as persisted, resumable jobs: discovery, scope, politeness, incremental re-crawl."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil

from .config import Settings
from .errors import (
    ExtractError,
    FetchError,
    InvalidInputError,
    UnsupportedContentError,
    VectorStoreError,
    WebIngestError,
)
from .jobs import TERMINAL, CrawlParams, JobRow, JobStore
from .metrics import Metrics
from .pipeline import Pipeline
from .politeness import HostLimiter
from .robots import RobotsRules, fetch_robots
from .scope import CrawlScope
from .ssrf import guarded_session
from .store import PostgresStore, validate_collection
from .urls import normalize_url, validate_url

log = logging.getLogger(__name__)

StatusCallback = Callable[["CrawlStatus"], Awaitable[None]]
STALE_HEARTBEAT_S = 30.0
STORE_RETRY_MIN_S = 1.0  # a paused crawl probes the store this often at first...
STORE_RETRY_MAX_S = 10.0  # ...backing off to this
HEARTBEAT_EVERY_S = 3.0


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


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _parse_lastmod(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _JobRun:
    """The state of one job while this process runs it."""

    def __init__(self, job: JobRow, scope: CrawlScope) -> None:
        self.job = job
        self.scope = scope
        self.cancelled = asyncio.Event()
        self.changed = asyncio.Event()
        self.in_flight = 0
        self.robots: dict[str, RobotsRules] = {}
        self.robots_lock = asyncio.Lock()
        self.paused: str | None = None  # why the job waits (the vector store is unreachable), while it does


class CrawlManager:
    """Starts, runs, resumes, reports and cancels crawl jobs; every job's frontier lives in PostgreSQL."""

    def __init__(
        self, settings: Settings, store: PostgresStore, jobs: JobStore, pipeline: Pipeline, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.pipeline = pipeline
        self.metrics = metrics
        self.limiter = HostLimiter(
            per_host_concurrency=settings.crawl_per_host_concurrency,
            requests_per_second=settings.crawl_requests_per_second or None,
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, _JobRun] = {}
        self._session: aiohttp.ClientSession | None = None

    # --- public API ---------------------------------------------------------------------------------------------

    def validate(self, params: CrawlParams) -> None:
        """Check crawl options against the limits, with messages that say what to change."""
        s = self.settings
        if not 0 <= params.max_depth <= s.crawl_max_depth:
            raise InvalidInputError(f"max_depth must be between 0 and {s.crawl_max_depth} (got {params.max_depth})")
        if not 1 <= params.max_pages <= s.crawl_max_pages:
            raise InvalidInputError(f"max_pages must be between 1 and {s.crawl_max_pages} (got {params.max_pages})")

    async def start(self, start_url: str, params: CrawlParams, collection: str | None = None) -> str:
        """Start a crawl job (or return the unfinished job of the same start URL, resuming it); returns its id."""
        collection = validate_collection(collection)
        start_url = normalize_url(validate_url(start_url))
        self.validate(params)
        CrawlScope.create(start_url, params.scope, params.include, params.exclude)  # validates the regexes
        existing = await self.jobs.find_unfinished(collection, start_url)
        if existing is not None:
            self._launch(existing.id)
            return existing.id
        return await self._create(collection, "crawl", start_url, params, [(start_url, 0, "start", None)])

    async def refresh(self, collection: str | None = None, url_prefix: str | None = None) -> str:
        """Re-crawl the stored pages of a collection (optionally under a URL prefix) with change detection."""
        collection = validate_collection(collection)
        urls = await self.store.page_urls(collection, url_prefix)
        if not urls:
            raise InvalidInputError(
                f"Nothing to refresh: collection {collection!r} has no pages"
                + (f" under {url_prefix}" if url_prefix else "")
            )
        params = CrawlParams(max_depth=0, max_pages=len(urls), use_sitemap=False, scope="domain")
        seeds = [(u, 0, "refresh", None) for u in urls]
        return await self._create(collection, "refresh", url_prefix or urls[0], params, seeds)

    async def _create(
        self, collection: str, kind: str, start_url: str, params: CrawlParams, seeds: list[tuple[str, int, str, None]]
    ) -> str:
        active = sum(1 for t in self._tasks.values() if not t.done())
        if active >= self.settings.crawl_max_concurrent_jobs:
            raise InvalidInputError(
                f"{active} crawl jobs are already running (limit CRAWL_MAX_CONCURRENT_JOBS="
                f"{self.settings.crawl_max_concurrent_jobs}); wait for one to finish or cancel one with cancel_crawl"
            )
        collection_id = await self.store.ensure_collection(collection)
        job_id = await self.jobs.create(collection_id, kind, start_url, params)
        await self.jobs.admit(job_id, seeds, limit=max(params.max_pages, len(seeds)))
        self._launch(job_id)
        return job_id

    async def status(self, job_id: str) -> CrawlStatus:
        """The job's state, counts, rate, ETA and failed URLs; resumes it if its runner died."""
        job = await self.jobs.get(job_id.strip())
        if job is None:
            raise InvalidInputError(
                f"No crawl job with id {job_id!r}; index_web_page returns the id of each job it starts"
            )
        if job.state not in TERMINAL and job.id not in self._tasks and self._orphaned(job):
            self._launch(job.id)
        status = await self._status(job)
        run = self._runs.get(job.id)
        if run is not None and run.paused and not status.finished:
            why = f"paused: {run.paused} — the job resumes by itself when the store answers; nothing is lost"
            status = dataclasses.replace(status, state="paused", error=why)
        return status

    async def cancel(self, job_id: str) -> CrawlStatus:
        """Cancel a queued or running job; pages already indexed stay."""
        job = await self.jobs.get(job_id.strip())
        if job is None:
            raise InvalidInputError(f"No crawl job with id {job_id!r}")
        await self.jobs.cancel(job.id)
        task = self._tasks.get(job.id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 10)
        refreshed = await self.jobs.get(job.id)
        assert refreshed is not None
        return await self._status(refreshed)

    async def wait(self, job_id: str, seconds: float, on_status: StatusCallback | None = None) -> CrawlStatus:
        """Wait up to `seconds` for the job to finish, reporting its status about once a second."""
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            status = await self.status(job_id)
            if on_status is not None:
                await on_status(status)
            remaining = deadline - time.monotonic()
            if status.finished or remaining <= 0:
                return status
            task = self._tasks.get(status.job_id)
            if task is None:
                await asyncio.sleep(min(1.0, remaining))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), min(1.0, remaining))

    async def resume_orphans(self) -> list[str]:
        """Resume unfinished jobs whose runner is gone (called at start-up)."""
        resumed = []
        for job in await self.jobs.unfinished():
            if job.id not in self._tasks and self._orphaned(job):
                self._launch(job.id)
                resumed.append(job.id)
        return resumed

    async def aclose(self) -> None:
        """Stop running jobs (they stay 'running' in the database and resume at the next start)."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- running ------------------------------------------------------------------------------------------------

    def _orphaned(self, job: JobRow) -> bool:
        if job.owner_pid is None or job.owner_pid == os.getpid():
            return True
        if not psutil.pid_exists(job.owner_pid):
            return True
        beat = job.heartbeat_at
        return beat is None or (datetime.now(UTC) - beat).total_seconds() > STALE_HEARTBEAT_S

    def _launch(self, job_id: str) -> None:
        task = self._tasks.get(job_id)
        if task is not None and not task.done():
            return
        self._tasks[job_id] = asyncio.create_task(self._run(job_id), name=f"crawl-{job_id}")

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.fetch_timeout_s)
            # robots.txt, sitemaps and llms.txt are fetched from URLs a model chose: the SSRF guard applies to them too.
            self._session = guarded_session(
                self.settings, timeout=timeout, headers={"User-Agent": self.settings.user_agent}
            )
        return self._session

    async def _run(self, job_id: str) -> None:
        job = await self.jobs.get(job_id)
        if job is None:
            return
        dead = [job.owner_pid] if job.owner_pid and not psutil.pid_exists(job.owner_pid) else []
        if not await self.jobs.claim(job_id, os.getpid(), dead, STALE_HEARTBEAT_S):
            return
        job = await self.jobs.get(job_id)
        assert job is not None
        p = job.params
        run = _JobRun(job, CrawlScope.create(job.start_url, p.scope, p.include, p.exclude))
        self.metrics.crawl_jobs_running.inc()
        self._runs[job_id] = run
        beat = asyncio.create_task(self._heartbeat(run))
        try:
            if job.kind == "crawl" and p.use_sitemap and p.max_pages > 1:
                await self._discover(run)
            workers = [asyncio.create_task(self._worker(run)) for _ in range(self.settings.crawl_concurrency)]
            await asyncio.gather(*workers)
            counts = await self.jobs.counts(job_id)
            if run.cancelled.is_set():
                state = "cancelled"
            elif counts.get("failed") and not (counts.get("indexed") or counts.get("unchanged")):
                state = "failed"
            else:
                state = "partial" if counts.get("failed") else "done"
            await self.jobs.finish(job_id, state)
            log.info("crawl %s finished: %s", job_id, state)
        except asyncio.CancelledError:
            raise  # server shutting down: the job stays 'running' and resumes at the next start
        except Exception as exc:
            log.exception("crawl %s failed", job_id)
            await self.jobs.finish(job_id, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            beat.cancel()
            self._runs.pop(job_id, None)
            self.metrics.crawl_jobs_running.dec()

    async def _heartbeat(self, run: _JobRun) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_S)
            with contextlib.suppress(Exception):
                if await self.jobs.heartbeat(run.job.id) == "cancelled":
                    run.cancelled.set()
                    run.changed.set()

    async def _discover(self, run: _JobRun) -> None:
        """Seed the frontier from sitemaps and llms.txt (depth 1), within scope and robots."""
        from .discover import discover_sitemap_urls, fetch_llms_txt

        job, session = run.job, self._http()
        robots = await self._robots(run, job.start_url)
        found: list[tuple[str, str, str | None]] = []
        with contextlib.suppress(Exception):
            found += [
                (u, "sitemap", lastmod) for u, lastmod in await discover_sitemap_urls(session, job.start_url, robots)
            ]
        with contextlib.suppress(Exception):
            found += [(u, "llms.txt", None) for u in await fetch_llms_txt(session, job.start_url)]
        admitted = [(normalize_url(u), 1, src, lm) for u, src, lm in found if run.scope.check(u) is None]
        await self.jobs.admit(job.id, admitted, job.params.max_pages)

    async def _robots(self, run: _JobRun, url: str) -> RobotsRules:
        if not run.job.params.respect_robots:
            return RobotsRules.allow_all("robots.txt ignored (respect_robots=false)")
        origin = _origin(url)
        async with run.robots_lock:
            if origin not in run.robots:
                rules = await fetch_robots(
                    self._http(), origin, self.settings.user_agent, self.settings.fetch_timeout_s
                )
                run.robots[origin] = rules
                self.limiter.set_crawl_delay(url, rules.crawl_delay)
            return run.robots[origin]

    async def _worker(self, run: _JobRun) -> None:
        while not run.cancelled.is_set():
            claimed = await self.jobs.next_url(run.job.id)
            if claimed is None:
                if run.in_flight == 0:
                    return
                run.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.changed.wait(), 1.0)
                continue
            run.in_flight += 1
            try:
                await self._process(run, *claimed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not kill the job: record it against the URL
                log.exception("crawl %s: %s", run.job.id, claimed[0])
                await self.jobs.record(run.job.id, claimed[0], "failed", reason=f"internal error: {exc}")
            finally:
                run.in_flight -= 1
                run.changed.set()

    async def _process(self, run: _JobRun, url: str, depth: int) -> None:
        job, p = run.job, run.job.params
        record = self.jobs.record
        if depth > 0 and job.kind == "crawl" and (why := run.scope.check(url)) is not None:
            await record(job.id, url, "skipped", reason=why)
            return
        rules = await self._robots(run, url)
        if not rules.allowed(url):
            await record(job.id, url, "skipped", reason=f"disallowed by robots.txt ({rules.reason})")
            return
        try:
            async with self.limiter.slot(url):
                out = await self.pipeline.index_page(url, job.collection, force=p.force, skip_duplicates=True)
        except (UnsupportedContentError, ExtractError) as exc:
            await record(job.id, url, "skipped", reason=str(exc))
            return
        except FetchError as exc:
            stored = await self.store.get_page(job.collection, url) if job.kind == "refresh" else None
            if stored is not None and exc.status in (404, 410):
                await self.store.delete_page(stored.id)
                await record(job.id, url, "removed", change="removed", reason=f"HTTP {exc.status}: page removed")
                return
            if exc.status == 429:
                self.limiter.pause(url, 30.0)
            await record(job.id, url, "failed", reason=str(exc))
            return
        except VectorStoreError as exc:
            # Not the page's fault: put it back in the frontier and wait for the store instead of failing pages.
            await record(job.id, url, "queued", reason=f"waiting for the vector store: {exc}")
            await self._wait_for_store(run, str(exc))
            return
        except WebIngestError as exc:
            await record(job.id, url, "failed", reason=str(exc))
            return
        if out.change == "duplicate":
            await record(job.id, url, "skipped", reason=f"same content as {out.duplicate_of}")
        elif out.change == "canonical":
            await record(job.id, url, "skipped", reason=f"its canonical URL is {out.duplicate_of}")
        else:
            state = "unchanged" if out.unchanged else "indexed"
            await record(job.id, url, state, change=out.change, page_id=out.page_id, chunks=out.chunk_count)
        links = out.links
        if out.links and out.change not in ("duplicate", "canonical"):
            await self.store.set_links(out.page_id, out.links)
        elif out.unchanged:
            links = await self.store.get_links(out.page_id)  # a 304 has no body: follow the links seen last time
        if job.kind != "crawl":
            return
        candidates = [(out.canonical_url, depth, "canonical")] if out.canonical_url else []
        if depth < p.max_depth:
            candidates += [(link, depth + 1, "link") for link in links]
        admitted = []
        for link, link_depth, source in candidates:
            with contextlib.suppress(WebIngestError):
                link = normalize_url(link)
                if run.scope.check(link) is None:
                    admitted.append((link, link_depth, source, None))
        await self.jobs.admit(job.id, admitted, p.max_pages)

    async def _wait_for_store(self, run: _JobRun, reason: str) -> None:
        """Pause this worker until the stores answer again (or the job is cancelled), probing with back-off."""
        run.paused = reason
        log.warning("crawl %s paused: %s", run.job.id, reason)
        delay = STORE_RETRY_MIN_S
        while not run.cancelled.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.cancelled.wait(), delay)
            try:
                await self.store.ping()
            except WebIngestError as exc:
                run.paused = str(exc)
                delay = min(delay * 2, STORE_RETRY_MAX_S)
                continue
            break
        if run.paused is not None:
            log.info("crawl %s: the store answers again, resuming", run.job.id)
        run.paused = None

    async def _status(self, job: JobRow) -> CrawlStatus:
        c = await self.jobs.counts(job.id)
        start = job.started_at or job.created_at
        end = job.finished_at or datetime.now(UTC)
        elapsed = max(0.0, (end - start).total_seconds())
        done = c.processed
        rate = done / elapsed if elapsed > 0 else 0.0
        pending = c.get("queued") + c.get("fetching")
        eta = pending / rate if rate > 0 and job.state not in TERMINAL else None
        failed = [{"url": u, "reason": r or ""} for u, r in await self.jobs.urls_in(job.id, ["failed"])]
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
        )


def status_dict(status: CrawlStatus) -> dict[str, Any]:
    """A plain dict of a status (for JSON output)."""
    return {**status.__dict__, "finished": status.finished}
