"""Verify and repair of the Qdrant store: compare chunk rows with points, restore missing points, delete stray ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mcp_web_ingest.storage.qdrant.collection import BATCH

if TYPE_CHECKING:
    from mcp_web_ingest.storage.qdrant.store import QdrantStore


@dataclass
class RepairReport:
    """What `repair` found (and fixed unless it was a dry run)."""

    chunks: int = 0
    points: int = 0
    missing: list[int] = field(default_factory=list)  # chunk rows without a point
    orphans: list[int] = field(default_factory=list)  # points without a chunk row
    mismatched: list[int] = field(default_factory=list)  # points whose payload names another page
    fixed: bool = False

    @property
    def in_sync(self) -> bool:
        """True when both stores hold exactly the same chunks."""
        return not (self.missing or self.orphans or self.mismatched)


async def repair(store: QdrantStore, *, dry_run: bool = False) -> RepairReport:
    """Compare chunk rows with points; unless dry_run, write missing points and delete orphans and mismatches."""
    report = RepairReport()
    rows: dict[int, str] = {}
    async with store.db.pool.connection() as conn:
        cur = await conn.execute("SELECT c.id, p.url FROM chunks c JOIN pages p ON p.id = c.page_id")
        rows = {int(i): str(u) for i, u in await cur.fetchall()}
    points: dict[int, str | None] = {}
    async with store._qdrant("reading point ids") as client:
        offset = None
        while True:
            batch, offset = await client.scroll(
                store.name, limit=1000, offset=offset, with_payload=["url"], with_vectors=False
            )
            points.update({int(p.id): (p.payload or {}).get("url") for p in batch})
            if offset is None:
                break
    report.chunks, report.points = len(rows), len(points)
    report.missing = sorted(set(rows) - set(points))
    report.orphans = sorted(set(points) - set(rows))
    report.mismatched = sorted(i for i in set(rows) & set(points) if points[i] != rows[i])
    if dry_run or report.in_sync:
        return report
    await store.chunks_deleted(report.orphans)
    todo = report.missing + report.mismatched
    for start in range(0, len(todo), BATCH):
        await store._upsert(await store._points_from_rows(todo[start : start + BATCH]))
    report.fixed = True
    return report
