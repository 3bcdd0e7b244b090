"""Persistence of crawl jobs and their frontier (queued, done, failed URLs) in PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from psycopg.rows import dict_row

from mcp_web_ingest.storage.db import Database

JobState = Literal["queued", "running", "done", "partial", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"done", "partial", "failed", "cancelled"})
URL_STATES = ("queued", "fetching", "indexed", "unchanged", "failed", "skipped", "removed")


@dataclass(frozen=True)
class CrawlParams:
    """What to crawl: the options of index_web_page beyond the start URL."""

    max_depth: int = 0
    max_pages: int = 1
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    scope: Literal["path", "host", "domain"] = "path"
    use_sitemap: bool = True
    respect_robots: bool = True
    force: bool = False
    auth_profile: str | None = None  # the name only: the profile's values stay in AUTH_PROFILES_FILE
    version: str | None = None  # the documentation version of every page (None: each page's URL says)

    def to_json(self) -> str:
        """JSON for the jobs table."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CrawlParams:
        """Read back from the jobs table, tolerating fields added later."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("include", "exclude"):
            known[key] = tuple(known.get(key, ()))
        return cls(**known)


@dataclass(frozen=True)
class JobRow:
    """A crawl job as stored."""

    id: str
    collection: str
    kind: str
    start_url: str
    params: CrawlParams
    state: str
    error: str | None
    owner_pid: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobCounts:
    """URLs of a job by state, and by change for the indexed ones."""

    by_state: dict[str, int] = field(default_factory=dict)
    by_change: dict[str, int] = field(default_factory=dict)
    chunks: int = 0

    def get(self, state: str) -> int:
        """Count of one state (0 when none)."""
        return self.by_state.get(state, 0)

    @property
    def discovered(self) -> int:
        """Every URL admitted to the frontier."""
        return sum(self.by_state.values())

    @property
    def processed(self) -> int:
        """URLs that reached a final state."""
        return sum(n for s, n in self.by_state.items() if s not in ("queued", "fetching"))


_JOB_SELECT = (
    "SELECT j.id::text AS id, c.name AS collection, j.kind, j.start_url, j.params, j.state, j.error, j.owner_pid, "
    "j.created_at, j.started_at, j.finished_at, j.heartbeat_at, j.notes FROM crawl_jobs j JOIN collections c ON "
    "c.id = j.collection_id"
)


def _job(row: dict[str, Any]) -> JobRow:
    return JobRow(**{**row, "params": CrawlParams.from_json(row["params"]), "notes": tuple(row["notes"] or ())})


class JobStore:
    """SQL of jobs and frontier; every state change is one statement, so a crash never leaves a URL half-done."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, collection_id: int, kind: str, start_url: str, params: CrawlParams) -> str:
        """A new queued job; returns its id."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO crawl_jobs (collection_id, kind, start_url, params) VALUES (%s, %s, %s, %s) "
                "RETURNING id::text",
                (collection_id, kind, start_url, params.to_json()),
            )
            row = await cur.fetchone()
        assert row is not None
        return str(row[0])

    async def last_started(self, collection: str | None) -> datetime | None:
        """When the newest finished crawl or refresh job (of a collection) started; None when there is none."""
        sql = (
            "SELECT max(j.started_at) FROM crawl_jobs j JOIN collections c ON c.id = j.collection_id "
            "WHERE j.finished_at IS NOT NULL"
        )
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                sql + (" AND c.name = %s" if collection else ""), [collection] if collection else []
            )
            row = await cur.fetchone()
        return row[0] if row else None

    async def get(self, job_id: str) -> JobRow | None:
        """One job, or None when the id is unknown (or not a UUID)."""
        async with self.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_JOB_SELECT + " WHERE j.id::text = %s", (job_id,))
            row = await cur.fetchone()
        return _job(row) if row else None

    async def find_unfinished(self, collection: str, start_url: str, kind: str = "crawl") -> JobRow | None:
        """The newest queued or running job of this start URL, to resume rather than start a twin."""
        async with self.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                _JOB_SELECT + " WHERE c.name = %s AND j.start_url = %s AND j.kind = %s "
                "AND j.state IN ('queued', 'running') ORDER BY j.created_at DESC LIMIT 1",
                (collection, start_url, kind),
            )
            row = await cur.fetchone()
        return _job(row) if row else None

    async def unfinished(self) -> list[JobRow]:
        """Every queued or running job (candidates to resume at start-up)."""
        async with self.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_JOB_SELECT + " WHERE j.state IN ('queued', 'running') ORDER BY j.created_at")
            return [_job(r) for r in await cur.fetchall()]

    async def recent(self, limit: int = 20) -> list[JobRow]:
        """The newest jobs, newest first."""
        async with self.db.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_JOB_SELECT + " ORDER BY j.created_at DESC LIMIT %s", (limit,))
            return [_job(r) for r in await cur.fetchall()]

    async def claim(self, job_id: str, pid: int, dead_pids: Sequence[int], stale_s: float) -> bool:
        """Take ownership of a job not owned by a live runner; atomic, so two servers never run one job."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE crawl_jobs SET owner_pid = %s, heartbeat_at = now(), state = 'running', "
                "started_at = coalesce(started_at, now()) WHERE id::text = %s AND state IN ('queued', 'running') "
                "AND (owner_pid IS NULL OR owner_pid = %s OR owner_pid = ANY(%s) "
                "OR heartbeat_at < now() - make_interval(secs => %s)) RETURNING id",
                (pid, job_id, pid, list(dead_pids), stale_s),
            )
            claimed = await cur.fetchone() is not None
            if claimed:
                # URLs a dead runner was fetching go back to the queue: their pages were never (or fully) written.
                await conn.execute(
                    "UPDATE crawl_urls SET state = 'queued' WHERE job_id::text = %s AND state = 'fetching'", (job_id,)
                )
        return claimed

    async def heartbeat(self, job_id: str) -> str | None:
        """Refresh the owner's heartbeat; returns the job's state (to notice a cancel from another process)."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE crawl_jobs SET heartbeat_at = now() WHERE id::text = %s RETURNING state", (job_id,)
            )
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def finish(
        self, job_id: str, state: str, error: str | None = None, notes: tuple[str, ...] | list[str] = ()
    ) -> None:
        """Record a job's final state (a cancelled job stays cancelled), its error and its notes."""
        async with self.db.pool.connection() as conn:
            await conn.execute(
                "UPDATE crawl_jobs SET state = CASE WHEN state = 'cancelled' THEN state ELSE %s END, error = %s, "
                "notes = %s, finished_at = now(), owner_pid = NULL WHERE id::text = %s",
                (state, error, list(notes), job_id),
            )

    async def cancel(self, job_id: str) -> bool:
        """Mark an unfinished job cancelled; its runner stops at the next URL."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE crawl_jobs SET state = 'cancelled', finished_at = now() "
                "WHERE id::text = %s AND state IN ('queued', 'running') RETURNING id",
                (job_id,),
            )
            return await cur.fetchone() is not None

    async def admit(self, job_id: str, urls: Iterable[tuple[str, int, str, str | None]], limit: int) -> int:
        """Add (url, depth, source, lastmod) to the frontier unless already there, up to `limit` URLs in the job."""
        rows = list(urls)
        if not rows:
            return 0
        async with self.db.pool.connection() as conn, conn.transaction():
            # Serialise admissions per job so the max_pages budget holds with concurrent workers.
            await conn.execute("SELECT 1 FROM crawl_jobs WHERE id::text = %s FOR UPDATE", (job_id,))
            cur = await conn.execute("SELECT count(*) FROM crawl_urls WHERE job_id::text = %s", (job_id,))
            row = await cur.fetchone()
            room = limit - int(row[0] if row else 0)
            if room <= 0:
                return 0
            added = 0
            for url, depth, source, lastmod in rows:
                if added >= room:
                    break
                cur = await conn.execute(
                    "INSERT INTO crawl_urls (job_id, url, depth, source, lastmod) VALUES (%s::uuid, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (job_id, url, depth, source, lastmod),
                )
                added += cur.rowcount
        return added

    async def next_url(self, job_id: str) -> tuple[str, int] | None:
        """Claim the next queued URL (breadth first) for fetching."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE crawl_urls SET state = 'fetching', updated_at = now() WHERE job_id::text = %s AND url = ("
                " SELECT url FROM crawl_urls WHERE job_id::text = %s AND state = 'queued' ORDER BY depth, seq "
                " LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING url, depth",
                (job_id, job_id),
            )
            row = await cur.fetchone()
        return (str(row[0]), int(row[1])) if row else None

    async def record(
        self,
        job_id: str,
        url: str,
        state: str,
        *,
        change: str | None = None,
        reason: str | None = None,
        page_id: int | None = None,
        chunks: int | None = None,
    ) -> None:
        """Store what happened to one URL."""
        async with self.db.pool.connection() as conn:
            await conn.execute(
                "UPDATE crawl_urls SET state = %s, change = %s, reason = %s, page_id = %s, chunks = %s, "
                "updated_at = now() WHERE job_id::text = %s AND url = %s",
                (state, change, reason, page_id, chunks, job_id, url),
            )

    async def counts(self, job_id: str) -> JobCounts:
        """URL counts by state and by change."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT state, change, count(*), coalesce(sum(chunks), 0) FROM crawl_urls WHERE job_id::text = %s "
                "GROUP BY state, change",
                (job_id,),
            )
            rows = await cur.fetchall()
        by_state: dict[str, int] = {}
        by_change: dict[str, int] = {}
        chunks = 0
        for state, change, n, c in rows:
            chunks += int(c)
            by_state[state] = by_state.get(state, 0) + int(n)
            if change:
                by_change[change] = by_change.get(change, 0) + int(n)
        return JobCounts(by_state, by_change, chunks)

    async def urls_in(self, job_id: str, states: Sequence[str], limit: int = 50) -> list[tuple[str, str | None]]:
        """(url, reason) of a job's URLs in the given states, oldest first."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT url, reason FROM crawl_urls WHERE job_id::text = %s AND state = ANY(%s) ORDER BY seq LIMIT %s",
                (job_id, list(states), limit),
            )
            return [(str(u), r) for u, r in await cur.fetchall()]
