"""Scheduled refreshes: each source (a collection's pages under a URL prefix) refreshed every interval, by the server.

The schedule lives in PostgreSQL, so it survives restarts. A due source is claimed with FOR UPDATE SKIP LOCKED (two
servers on one database never both start it) and only when its last refresh job has finished: a refresh still
running, or resumed after a restart, is never started twice. The next run is the interval plus up to 10 % jitter,
so sources indexed together do not all refresh in the same second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mcp_web_ingest.config.common import parse_span
from mcp_web_ingest.errors import InvalidInputError, WebIngestError
from mcp_web_ingest.metrics import Metrics
from mcp_web_ingest.storage.db import Database
from mcp_web_ingest.storage.postgres.sources import collection_id

if TYPE_CHECKING:
    from mcp_web_ingest.crawl.manager import CrawlManager

__all__ = ["Schedule", "ScheduleStore", "Scheduler", "interval_seconds", "parse_refresh_interval", "source_prefix"]

log = logging.getLogger(__name__)
JITTER = 0.1


@dataclass(frozen=True)
class Schedule:
    """One source's refresh schedule and how its last run went."""

    collection: str
    url_prefix: str
    interval_s: float
    auth_profile: str | None
    next_run_at: datetime
    last_run_at: datetime | None
    last_job_id: str | None
    last_state: str | None  # the last job's state (queued, running, done, partial, failed, cancelled)


_SELECT = (
    "SELECT c.name, s.url_prefix, s.interval_s, s.auth_profile, s.next_run_at, s.last_run_at, s.last_job_id::text, "
    "j.state FROM refresh_schedules s JOIN collections c ON c.id = s.collection_id "
    "LEFT JOIN crawl_jobs j ON j.id = s.last_job_id"
)


class ScheduleStore:
    """SQL of refresh schedules."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def set(
        self, collection: str, url_prefix: str, interval_s: float, auth_profile: str | None, *, keep: bool = False
    ) -> None:
        """Refresh ``url_prefix`` of ``collection`` every ``interval_s`` seconds from now on.

        keep: leave a schedule the source already has as it is (a source's own interval wins over the default).
        """
        on_conflict = (
            "DO NOTHING"
            if keep
            else "DO UPDATE SET interval_s = EXCLUDED.interval_s, auth_profile = EXCLUDED.auth_profile, "
            "next_run_at = EXCLUDED.next_run_at"
        )
        async with self.db.pool.connection() as conn:
            key = await collection_id(conn, collection)
            await conn.execute(
                "INSERT INTO refresh_schedules (collection_id, url_prefix, interval_s, auth_profile, next_run_at) "
                "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s)) "
                f"ON CONFLICT (collection_id, url_prefix) {on_conflict}",
                (key, url_prefix, interval_s, auth_profile, interval_s),
            )

    async def remove(self, collection: str, url_prefix: str) -> bool:
        """Stop refreshing a source; False when it had no schedule."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM refresh_schedules s USING collections c WHERE c.id = s.collection_id AND c.name = %s "
                "AND s.url_prefix = %s",
                (collection, url_prefix),
            )
            return cur.rowcount > 0

    async def all(self, collection: str | None = None) -> list[Schedule]:
        """Every schedule (of one collection), with its last job's state."""
        async with self.db.pool.connection() as conn:
            sql = _SELECT + (" WHERE c.name = %s" if collection else "") + " ORDER BY c.name, s.url_prefix"
            rows = await (await conn.execute(sql, [collection] if collection else [])).fetchall()
        return [Schedule(*row) for row in rows]

    async def claim_due(self) -> list[Schedule]:
        """Schedules due now whose last job has finished, each moved to its next run (with jitter) in one step."""
        async with self.db.pool.connection() as conn, conn.transaction():
            rows = await (
                await conn.execute(
                    "SELECT s.id, s.interval_s FROM refresh_schedules s LEFT JOIN crawl_jobs j ON j.id = s.last_job_id "
                    "WHERE s.next_run_at <= now() AND (j.id IS NULL OR j.finished_at IS NOT NULL) "
                    "FOR UPDATE OF s SKIP LOCKED"
                )
            ).fetchall()
            for schedule_id, interval_s in rows:
                delay = interval_s * (1 + random.uniform(0, JITTER))
                await conn.execute(
                    "UPDATE refresh_schedules SET next_run_at = now() + make_interval(secs => %s), "
                    "last_run_at = now() WHERE id = %s",
                    (delay, schedule_id),
                )
            if not rows:
                return []
            found = await conn.execute(_SELECT + " WHERE s.id = ANY(%s)", ([r[0] for r in rows],))
            return [Schedule(*row) for row in await found.fetchall()]

    async def started(self, collection: str, url_prefix: str, job_id: str) -> None:
        """Record the job a scheduled refresh started."""
        async with self.db.pool.connection() as conn:
            await conn.execute(
                "UPDATE refresh_schedules s SET last_job_id = %s::uuid FROM collections c "
                "WHERE c.id = s.collection_id AND c.name = %s AND s.url_prefix = %s",
                (job_id, collection, url_prefix),
            )


class Scheduler:
    """Starts due refreshes as crawl jobs, every REFRESH_CHECK_S (or at once when a schedule changes)."""

    def __init__(
        self, store: ScheduleStore, crawler: CrawlManager, metrics: Metrics, check_s: float, default: str | None
    ) -> None:
        self.store = store
        self.crawler = crawler
        self.metrics = metrics
        self.check_s = check_s
        self.default_s = interval_seconds(default) if default else None  # REFRESH_INTERVAL
        self._wake = asyncio.Event()

    async def apply(
        self, collection: str, url_prefix: str, interval: str | None, auth_profile: str | None
    ) -> float | None:
        """Set (an interval), stop ('off') or default (REFRESH_INTERVAL, when set) a source's schedule.

        Returns the interval in seconds now in force for the source from this call, None when none.
        """
        if interval is not None:
            seconds = parse_refresh_interval(interval)
            if seconds is None:
                await self.store.remove(collection, url_prefix)
                return None
            await self.store.set(collection, url_prefix, seconds, auth_profile)
        elif self.default_s is not None:
            seconds = self.default_s
            await self.store.set(collection, url_prefix, seconds, auth_profile, keep=True)
        else:
            return None
        self.poke()
        return seconds

    def poke(self) -> None:
        """Look for due refreshes now (a schedule was added or changed)."""
        self._wake.set()

    async def observe(self) -> None:
        """Set the schedule gauges: how many by last outcome, the next run due and the last run started."""
        schedules = await self.store.all()
        states = Counter(s.last_state or "none" for s in schedules)
        for state in {"none", "queued", "running", "done", "partial", "failed", "cancelled", *states}:
            self.metrics.refresh_schedules.labels(state).set(states.get(state, 0))
        if schedules:
            self.metrics.refresh_next_run.set(min(s.next_run_at for s in schedules).timestamp())
        if runs := [s.last_run_at for s in schedules if s.last_run_at]:
            self.metrics.refresh_last_run.set(max(runs).timestamp())

    async def run_due(self) -> list[str]:
        """Start every due refresh; returns the job ids started."""
        started = []
        for schedule in await self.store.claim_due():
            try:
                # A folder's (or a whole collection's) refresh also finds pages added to it; a page's, just the page.
                folder = schedule.url_prefix.endswith("/") or not schedule.url_prefix
                job_id = await self.crawler.refresh(
                    schedule.collection, schedule.url_prefix or None, schedule.auth_profile, discover=folder
                )
            except WebIngestError as exc:  # nothing stored under the prefix any more, too many jobs running...
                log.warning("scheduled refresh of %s %s not started: %s", schedule.collection, schedule.url_prefix, exc)
                self.metrics.scheduled_refreshes.labels("not_started").inc()
                continue
            await self.store.started(schedule.collection, schedule.url_prefix, job_id)
            self.metrics.scheduled_refreshes.labels("started").inc()
            started.append(job_id)
        return started

    async def run_forever(self) -> None:
        """The server's loop; a failing round is logged and the next one tried."""
        while True:
            try:
                await self.run_due()
                await self.observe()
            except Exception:  # a database restart must not end scheduling for the server's life
                log.exception("scheduled refresh round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_s)
            self._wake.clear()


OFF = frozenset({"off", "never", "0", "none"})


def source_prefix(url: str, scope: str = "page") -> str:
    """The URL prefix a schedule covers: the page itself, its folder (a path crawl) or its origin (host/domain)."""
    parts = urlsplit(url)
    if scope == "page":
        return url
    if scope == "path":
        return url[: url.rfind("/") + 1] if parts.path else url + "/"
    return f"{parts.scheme}://{parts.netloc}/"


def parse_refresh_interval(text: str) -> float | None:
    """A refresh_interval argument in seconds, or None for 'off' (also never, none, 0); InvalidInputError if bad."""
    return None if text.strip().lower() in OFF else interval_seconds(text)


def interval_seconds(text: str) -> float:
    """A refresh interval (30m, 12h, 7d) in seconds; InvalidInputError for anything else."""
    span = parse_span(text)
    if span is None or span.total_seconds() <= 0:
        raise InvalidInputError(f"refresh_interval={text!r}: write a span such as 30m, 12h, 1d or 1w, or 'off'")
    return span.total_seconds()
