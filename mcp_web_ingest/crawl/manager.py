"""Whole-site crawls as persisted, resumable jobs: discovery, scope, politeness, incremental re-crawl."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import psutil

from mcp_web_ingest.config import Settings
from mcp_web_ingest.crawl.discovery import RobotsCache, discover_seeds
from mcp_web_ingest.crawl.jobs import TERMINAL, CrawlParams, JobRow, JobStore
from mcp_web_ingest.crawl.politeness import HostLimiter
from mcp_web_ingest.crawl.robots import RobotsRules
from mcp_web_ingest.crawl.run import JobRun
from mcp_web_ingest.crawl.scope import CrawlScope
from mcp_web_ingest.crawl.status import CrawlStatus, build_status, status_dict
from mcp_web_ingest.errors import (
    BlockedAddressError,
    ExtractError,
    FetchError,
    InvalidInputError,
    UnsupportedContentError,
    VectorStoreError,
    WebIngestError,
)
from mcp_web_ingest.ingest.auth_profiles import RequestAuth, choose_profile
from mcp_web_ingest.ingest.ssrf import guarded_session
from mcp_web_ingest.ingest.urls import normalize_url, split_credentials, validate_url
from mcp_web_ingest.metrics import Metrics
from mcp_web_ingest.pipeline import Pipeline
from mcp_web_ingest.storage.interfaces import Store
from mcp_web_ingest.storage.records import validate_collection

__all__ = ["CrawlManager", "CrawlStatus", "status_dict"]

log = logging.getLogger(__name__)

StatusCallback = Callable[["CrawlStatus"], Awaitable[None]]
STALE_HEARTBEAT_S = 30.0
HEARTBEAT_EVERY_S = 3.0


class CrawlManager:
    """Starts, runs, resumes, reports and cancels crawl jobs; every job's frontier lives in PostgreSQL."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        jobs: JobStore,
        pipeline: Pipeline,
        metrics: Metrics,
        auth_profiles: dict[str, RequestAuth] | None = None,
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
        self._runs: dict[str, JobRun] = {}
        self._credentials: dict[str, RequestAuth] = {}  # HTTP Basic of a start URL, sent to its origin only
        self.auth_profiles = auth_profiles or {}  # AUTH_PROFILES_FILE: named credentials for private sites
        self._session: aiohttp.ClientSession | None = None

    # --- public API ---------------------------------------------------------------------------------------------

    def auth_profile(self, name: str, url: str | None = None) -> RequestAuth:
        """The named auth profile (checked to apply to ``url`` when given); InvalidInputError names the choices."""
        return choose_profile(self.auth_profiles, name, url)

    def _job_auth(self, job_id: str, profile: str | None, url: str) -> RequestAuth | None:
        """What a job's fetch of ``url`` sends: the start URL's own credentials, else its profile, where they apply."""
        for auth in (self._credentials.get(job_id), self.auth_profiles.get(profile) if profile else None):
            if auth is not None and auth.applies_to(url):
                return auth
        return None

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
        start_url, in_url = split_credentials(validate_url(start_url))
        start_url = normalize_url(start_url)
        auth = RequestAuth.for_url(start_url, in_url) if in_url is not None else None
        self.validate(params)
        if params.auth_profile is not None:
            self.auth_profile(params.auth_profile, start_url)
        CrawlScope.create(start_url, params.scope, params.include, params.exclude)  # validates the regexes
        existing = await self.jobs.find_unfinished(collection, start_url)
        if existing is not None:
            job_id = existing.id
        else:
            job_id = await self._create(collection, "crawl", start_url, params, [(start_url, 0, "start", None)])
        if auth is not None:
            # Kept in memory only: a job resumed after a restart goes on without them. Set before the job runs.
            self._credentials[job_id] = auth
        self._launch(job_id)
        return job_id

    async def refresh(
        self, collection: str | None = None, url_prefix: str | None = None, auth_profile: str | None = None, *,
        discover: bool = False,
    ) -> str:  # fmt: skip
        """Re-crawl stored pages (of a collection, under a URL prefix) with change detection; ``discover``: follow
        their links one level, within the prefix's folder, to find pages added since."""
        collection = validate_collection(collection)
        if auth_profile is not None:
            self.auth_profile(auth_profile)
        urls = await self.store.catalog.page_urls(collection, url_prefix)
        if not urls:
            raise InvalidInputError(
                f"Nothing to refresh: collection {collection!r} has no pages"
                + (f" under {url_prefix}" if url_prefix else "")
            )
        more, scope = (self.settings.crawl_max_pages, "path") if discover else (0, "domain")
        params = CrawlParams(int(discover), len(urls) + more, scope=scope, use_sitemap=False, auth_profile=auth_profile)
        seeds = [(u, 0, "refresh", None) for u in urls]
        job_id = await self._create(collection, "refresh", url_prefix or urls[0], params, seeds)
        self._launch(job_id)
        return job_id

    async def _create(
        self, collection: str, kind: str, start_url: str, params: CrawlParams, seeds: list[tuple[str, int, str, None]]
    ) -> str:
        """Persist a job and its seed URLs; the caller launches it."""
        active = sum(1 for t in self._tasks.values() if not t.done())
        if active >= self.settings.crawl_max_concurrent_jobs:
            raise InvalidInputError(
                f"{active} crawl jobs are already running (limit CRAWL_MAX_CONCURRENT_JOBS="
                f"{self.settings.crawl_max_concurrent_jobs}); wait for one to finish or cancel one with cancel_crawl"
            )
        collection_id = await self.store.catalog.ensure_collection(collection)
        job_id = await self.jobs.create(collection_id, kind, start_url, params)
        await self.jobs.admit(job_id, seeds, limit=max(params.max_pages, len(seeds)))
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
        status = await build_status(self.jobs, job)
        run = self._runs.get(job.id)
        return run.live_status(status) if run is not None else status

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
        return await build_status(self.jobs, refreshed)

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
        try:
            scope = CrawlScope.create(job.start_url, p.scope, p.include, p.exclude)
        except InvalidInputError as exc:  # a job stored by an older version may hold patterns refused now
            await self.jobs.finish(job_id, "failed", str(exc))
            return
        run = JobRun(job, scope)
        run.robots = RobotsCache(
            self.settings, self._http, run.notes, respect=p.respect_robots, on_rules=self._on_robots
        )
        self.metrics.crawl_jobs_running.inc()
        self._runs[job_id] = run
        log.info("crawl %s started: %s %s in collection %s", job_id, job.kind, job.start_url, job.collection)
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
            await self.jobs.finish(job_id, state, notes=run.notes.all())
            log.info("crawl %s finished: %s", job_id, state)
        except asyncio.CancelledError:
            raise  # server shutting down: the job stays 'running' and resumes at the next start
        except Exception as exc:
            log.exception("crawl %s failed", job_id)
            await self.jobs.finish(job_id, "failed", f"{type(exc).__name__}: {exc}", notes=run.notes.all())
        finally:
            beat.cancel()
            self._runs.pop(job_id, None)
            self._credentials.pop(job_id, None)
            self.metrics.crawl_jobs_running.dec()

    async def _heartbeat(self, run: JobRun) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_S)
            with contextlib.suppress(Exception):
                if await self.jobs.heartbeat(run.job.id) == "cancelled":
                    run.cancelled.set()
                    run.changed.set()

    async def _discover(self, run: JobRun) -> None:
        """Seed the frontier from sitemaps and llms.txt (depth 1), within scope and robots."""
        job = run.job
        assert run.robots is not None
        found = await discover_seeds(self._http(), job.start_url, run.robots, run.notes)
        keep = await run.scope.admissible([u for u, _, _ in found])
        admitted = [(u, 1, src, lm) for u, (_, src, lm) in zip(keep, found, strict=True) if u is not None]
        await self.jobs.admit(job.id, admitted, job.params.max_pages)

    async def _robots(self, run: JobRun, url: str) -> RobotsRules:
        assert run.robots is not None
        return await run.robots.rules(url)

    def _on_robots(self, url: str, rules: RobotsRules) -> None:
        self.limiter.set_crawl_delay(url, rules.crawl_delay)

    async def _worker(self, run: JobRun) -> None:
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

    async def _process(self, run: JobRun, url: str, depth: int) -> None:
        job, p = run.job, run.job.params
        record = self.jobs.record
        if depth > 0 and job.kind == "crawl" and (why := await run.scope.check_async(url)) is not None:
            await record(job.id, url, "skipped", reason=why)
            return
        rules = await self._robots(run, url)
        if not rules.allowed(url):
            await record(job.id, url, "skipped", reason=f"disallowed by robots.txt ({rules.reason})")
            return
        try:
            async with self.limiter.slot(url):
                auth = self._job_auth(job.id, p.auth_profile, url)
                out = await self.pipeline.index_page(
                    url, job.collection, force=p.force, skip_duplicates=True, auth=auth, version=p.version
                )
        except (UnsupportedContentError, ExtractError) as exc:
            await record(job.id, url, "skipped", reason=str(exc))
            return
        except BlockedAddressError as exc:  # the SSRF guard refused the host or a redirect hop: no traceback
            log.warning("crawl %s: refused %s: %s", job.id, url, exc)
            await record(job.id, url, "failed", reason=f"blocked address: {exc}")
            return
        except FetchError as exc:
            stored = await self.store.catalog.get_page(job.collection, url) if job.kind == "refresh" else None
            if stored is not None and exc.status in (404, 410):
                await self.store.delete_page(stored.id)
                await record(job.id, url, "removed", change="removed", reason=f"HTTP {exc.status}: page removed")
                return
            if exc.status == 429:
                self.limiter.pause(url, 30.0)
            log.warning("crawl %s: %s failed: %s", job.id, url, exc)
            await record(job.id, url, "failed", reason=str(exc))
            return
        except VectorStoreError as exc:
            # Not the page's fault: put it back in the frontier and wait for the store instead of failing pages.
            await record(job.id, url, "queued", reason=f"waiting for the vector store: {exc}")
            await run.wait_for_store(self.store.ping, str(exc))
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
            await self.store.catalog.set_links(out.page_id, out.links)
        elif out.unchanged:
            links = await self.store.catalog.get_links(out.page_id)  # a 304 has no body: follow the last links
        if job.kind != "crawl" and p.max_depth == 0:
            return
        candidates = [(out.canonical_url, depth, "canonical")] if out.canonical_url else []
        if depth < p.max_depth:
            candidates += [(link, depth + 1, "link") for link in links]
        keep = await run.scope.admissible([link for link, _, _ in candidates])
        admitted = [(u, d, src, None) for u, (_, d, src) in zip(keep, candidates, strict=True) if u is not None]
        await self.jobs.admit(job.id, admitted, p.max_pages)
