"""Backup → wipe → restore gives back the same index: same ids, URLs, scores; failures are clear StoreErrors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import StoreError
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest
from mcp_web_ingest.storage.backup import _split_password, backup, client_binary, restore

from .conftest import free_port

PAGES = ("/guide/install.html", "/guide/config.html")
QUERIES = ("what to do about a self-test checksum mismatch", "compaction snapshots")


def _admin(conninfo: str) -> str:
    return conninfo.replace("/mcp_web_ingest?", "/postgres?")


@pytest.fixture
def scratch(runtime: Runtime) -> Iterator[tuple[str, str]]:
    """Two new, empty databases on the session's embedded server (source, restore target); dropped afterwards."""
    assert runtime.db.conninfo is not None
    names = ("backuptest", "restoretest")
    with psycopg.connect(_admin(runtime.db.conninfo), autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    yield tuple(runtime.db.conninfo.replace("/mcp_web_ingest?", f"/{n}?") for n in names)  # type: ignore[misc]
    with psycopg.connect(_admin(runtime.db.conninfo), autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _snapshot(settings: Settings, conninfo: str, index_urls: tuple[str, ...] = ()) -> dict[str, Any]:
    """Open a runtime on the database, index the URLs, and record every search result and the counts."""
    external = settings.model_copy(update={"postgres_connection_string": SecretStr(conninfo)})
    async with Runtime.open(external, resume_jobs=False) as rt:
        for url in index_urls:
            await rt.pipeline.index_page(url)
        results = {}
        for query in QUERIES:
            for mode in ("hybrid", "dense", "lexical"):
                out = await rt.pipeline.search(SearchRequest.create(rt.settings, query, k=5, mode=mode))
                results[(query, mode)] = [(h.chunk_id, h.page_id, h.url, h.anchor, h.score, h.text) for h in out.hits]
        return {"results": results, "counts": await rt.store.catalog.counts()}


async def test_backup_wipe_restore_roundtrip(
    settings: Settings, scratch: tuple[str, str], site_url: str, tmp_path: Path
) -> None:
    source, target = scratch
    before = await _snapshot(settings, source, tuple(site_url + p for p in PAGES))
    assert before["counts"]["pages"] == 2
    first = before["results"][(QUERIES[0], "hybrid")]
    assert first and first[0][2] == site_url + PAGES[0]
    assert before["results"][(QUERIES[1], "hybrid")][0][2] == site_url + PAGES[1]

    dump = tmp_path / "index.dump"
    backup(source, dump)
    assert dump.stat().st_size > 0 and dump.read_bytes()[:5] == b"PGDMP"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.dump"]  # noqa: ASYNC240 - no partial file left

    # Wipe everything: the schema goes, extension and migrations table included.
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    restore(source, dump)
    assert await _snapshot(settings, source) == before

    # Disaster recovery: restore into a brand-new database.
    restore(target, dump, clean=False)
    assert await _snapshot(settings, target) == before

    # Restoring over a live database that changed since the backup gives the backup back.
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("DELETE FROM pages WHERE url LIKE %s", ("%config.html",))
    restore(source, dump)
    assert await _snapshot(settings, source) == before


def test_backup_of_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    dump = tmp_path / "x.dump"
    dump.write_bytes(b"previous good backup")
    conninfo = f"postgresql://someone:s3cret-pw@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(StoreError) as info:
        backup(conninfo, dump)
    message = str(info.value)
    assert "pg_dump failed" in message and "127.0.0.1" in message and "s3cret-pw" not in message
    assert dump.read_bytes() == b"previous good backup"  # a failed backup never replaces a good one
    assert not list(tmp_path.glob(".*.partial"))


def test_restore_errors(tmp_path: Path, scratch: tuple[str, str]) -> None:
    with pytest.raises(StoreError, match="not found"):
        restore(scratch[0], tmp_path / "missing.dump")
    garbage = tmp_path / "garbage.dump"
    garbage.write_text("this is not a dump")
    with pytest.raises(StoreError, match="pg_restore failed") as info:
        restore(scratch[0], garbage)
    assert "input file" in str(info.value)  # pg_restore's own reason is carried along
    with pytest.raises(StoreError, match="directory"):
        backup(scratch[0], tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        backup(scratch[0], tmp_path / "nope" / "x.dump")


def test_password_travels_in_the_environment() -> None:
    dsn, env = _split_password("postgresql://u:p%40ss@db.example:5533/idx?sslmode=require")
    assert "p@ss" not in dsn and env["PGPASSWORD"] == "p@ss"
    assert "host=db.example" in dsn and "port=5533" in dsn and "sslmode=require" in dsn
    assert client_binary("pg_dump").name == "pg_dump"
    with pytest.raises(StoreError, match="Invalid PostgreSQL connection string"):
        _split_password("not a = valid = conninfo")
