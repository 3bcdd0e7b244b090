"""The CLI's maintenance commands: migrations, backup and restore, re-embedding, Qdrant repair, SPLADE back-fill."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from mcp_web_ingest.config import Settings
from mcp_web_ingest.runtime import Runtime


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


async def with_runtime(settings: Settings, fn: Callable[[Runtime], Awaitable[int]]) -> int:
    # One-shot commands leave other crawl jobs to the servers (a job of the same start URL is still resumed).
    async with Runtime.open(settings, resume_jobs=False) as runtime:
        return await fn(runtime)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply, revert or list migrations."""
    from mcp_web_ingest.storage.db import Database
    from mcp_web_ingest.storage.migrate import migrate_down, migrate_up, migration_status

    async def run() -> int:
        db = Database(settings)
        try:
            conninfo = await db.resolve_conninfo()
            if args.action == "up":
                done = await asyncio.to_thread(migrate_up, conninfo, args.target)
                print("\n".join(f"applied {m.version:04d}_{m.name}" for m in done) or "nothing to apply")
            elif args.action == "down":
                done = await asyncio.to_thread(migrate_down, conninfo, args.steps)
                print("\n".join(f"reverted {m.version:04d}_{m.name}" for m in done) or "nothing to revert")
            else:
                for m, applied in await asyncio.to_thread(migration_status, conninfo):
                    print(f"{'applied' if applied else 'pending'}  {m.version:04d}_{m.name}")
        finally:
            await db.aclose()
        return 0

    return asyncio.run(run())


def cmd_reembed(settings: Settings, args: argparse.Namespace) -> int:
    """Re-embed every stored chunk with the configured model (after changing EMBEDDING_MODEL); no re-crawl."""
    from mcp_web_ingest.runtime import make_embedder, make_store
    from mcp_web_ingest.storage.db import Database
    from mcp_web_ingest.storage.migrate import migrate_up

    async def run() -> int:
        db = Database(settings)
        embedder = make_embedder(settings)
        store = make_store(settings, db)
        try:
            await asyncio.to_thread(migrate_up, await db.resolve_conninfo())
            await db.open()
            await embedder.start()
            await store.open()
            total = await store.reset_embedding_space(embedder.model_name, embedder.dimension)
            done = 0
            while batch := await store.catalog.chunks_missing_vectors(settings.embedding_batch_size):
                texts = [f"{ctx}\n\n{text}" if ctx else text for _, ctx, text in batch]
                await store.set_vectors([i for i, _, _ in batch], await embedder.embed_documents(texts))
                done += len(batch)
                print(f"\rre-embedded {done}/{total}", end="", file=sys.stderr)
            print(f"\nre-embedded {done} chunks with {embedder.model_name}", file=sys.stderr)
        finally:
            await store.aclose()
            await embedder.aclose()
            await db.aclose()
        return 0

    return asyncio.run(run())


def cmd_repair(settings: Settings, args: argparse.Namespace) -> int:
    """Compare PostgreSQL's chunks with Qdrant's points and fix the drift (missing points, orphans, mismatches)."""

    async def run(rt: Runtime) -> int:
        if not rt.store.index.outside_catalog:
            print("nothing to repair: VECTOR_STORE=postgres keeps every vector in PostgreSQL", file=sys.stderr)
            return 0
        report = await rt.store.index.repair(dry_run=args.dry_run)
        summary = {
            "chunks": report.chunks,
            "points": report.points,
            "missing_points": len(report.missing),
            "orphan_points": len(report.orphans),
            "mismatched_points": len(report.mismatched),
            "in_sync": report.in_sync,
            "fixed": report.fixed,
        }
        if args.json:
            print_json(summary)
        else:
            print(", ".join(f"{k}={v}" for k, v in summary.items()))
        # verify (--dry-run) exits 1 on drift so cron jobs and monitoring can act on it.
        return 1 if args.dry_run and not report.in_sync else 0

    return asyncio.run(with_runtime(settings, run))


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    """Back up or restore the whole database (pg_dump -Fc / pg_restore --clean --if-exists --no-owner)."""
    from mcp_web_ingest.storage.backup import backup, restore
    from mcp_web_ingest.storage.db import Database
    from mcp_web_ingest.storage.migrate import migrate_up

    async def run() -> int:
        db = Database(settings)
        try:
            conninfo = await db.resolve_conninfo()
            if args.action == "backup":
                await asyncio.to_thread(backup, conninfo, args.file)
                print(f"backed up to {args.file}", file=sys.stderr)
            else:
                await asyncio.to_thread(restore, conninfo, args.file, clean=not args.no_clean)
                await asyncio.to_thread(migrate_up, conninfo)  # a backup older than the code
                print(f"restored {args.file}; restart running servers", file=sys.stderr)
        finally:
            await db.aclose()
        return 0

    return asyncio.run(run())


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    """Add SPLADE postings to chunks stored while the SPLADE service was down (servers also do it periodically)."""

    async def run(rt: Runtime) -> int:
        if rt.sparse is None:
            print(
                "error: SPLADE is not configured (set SPLADE_URL or SPLADE_MODEL_DIR, with ENABLE_HYBRID_SEARCH=true)",
                file=sys.stderr,
            )
            return 2
        print(f"back-filled SPLADE vectors of {await rt.pipeline.backfill_sparse()} chunks")
        return 0

    return asyncio.run(with_runtime(settings, run))


def cmd_pack(settings: Settings, args: argparse.Namespace) -> int:
    """export COLLECTION FILE / import FILE: move a collection between machines as one file."""
    from mcp_web_ingest.storage.packs import export_pack, import_pack

    async def run(rt: Runtime) -> int:
        model, dimension = rt.embedder.model_name, rt.embedder.dimension
        if args.command == "export":
            done = await export_pack(rt.db, args.collection, args.file, model, dimension)
            print(f"exported {done.pages} pages ({done.chunks} chunks) of {done.collection!r} to {args.file}")
        else:
            done = await import_pack(rt.store, rt.db, args.file, model, dimension, args.collection)
            print(f"imported {done.pages} pages ({done.chunks} chunks) into {done.collection!r}")
        return 0

    return asyncio.run(with_runtime(settings, run))
