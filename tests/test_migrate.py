"""Migrations up, down and status on a scratch database of the session's embedded PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mcp_web_ingest.errors import SchemaMismatchError, StoreError
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.storage.migrate import load_migrations, migrate_down, migrate_up, migration_status


@pytest.fixture
def scratch_db(runtime: Runtime) -> Iterator[str]:
    """A new, empty database on the embedded server; dropped afterwards."""
    assert runtime.db.conninfo is not None
    admin = runtime.db.conninfo.replace("/mcp_web_ingest?", "/postgres?")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS migtest")
        conn.execute("CREATE DATABASE migtest")
    yield runtime.db.conninfo.replace("/mcp_web_ingest?", "/migtest?")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS migtest WITH (FORCE)")


def _tables(conninfo: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_up_status_down_up(scratch_db: str) -> None:
    assert all(not applied for _, applied in migration_status(scratch_db))
    applied = migrate_up(scratch_db)
    assert [m.version for m in applied] == [m.version for m in load_migrations()]
    assert {"collections", "pages", "chunks", "index_meta", "schema_migrations"} <= _tables(scratch_db)
    assert migrate_up(scratch_db) == []  # idempotent
    assert all(applied for _, applied in migration_status(scratch_db))
    everything = load_migrations()
    undone = migrate_down(scratch_db, steps=len(everything))
    assert [m.version for m in undone] == [m.version for m in reversed(everything)]
    assert _tables(scratch_db) == {"schema_migrations"}
    assert [m.version for m in migrate_up(scratch_db)] == [m.version for m in everything]


def test_failed_migration_rolls_back_and_is_not_recorded(scratch_db: str, tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text(
        "-- migrate:up\nCREATE TABLE ok1 (x int);\n-- migrate:down\nDROP TABLE ok1;\n"
    )
    (tmp_path / "0002_bad.sql").write_text(
        "-- migrate:up\nCREATE TABLE half (x int);\nSELECT no_such_function();\n-- migrate:down\nDROP TABLE half;\n"
    )
    with pytest.raises(psycopg.Error):
        migrate_up(scratch_db, directory=tmp_path)
    assert "ok1" in _tables(scratch_db) and "half" not in _tables(scratch_db)
    assert [(m.version, ok) for m, ok in migration_status(scratch_db, directory=tmp_path)] == [(1, True), (2, False)]


def test_malformed_migration_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "0001_x.sql").write_text("CREATE TABLE x (y int);")
    with pytest.raises(StoreError, match="migrate:up"):
        load_migrations(tmp_path)


async def test_other_embedding_model_is_a_clear_error(clean: Runtime) -> None:
    with pytest.raises(SchemaMismatchError) as info:
        await clean.store.ensure_embedding_space("some-other-model", 768)
    message = str(info.value)
    assert "all-MiniLM-L6-v2" in message and "768" in message and "reembed" in message
    # The configured space is untouched and still usable.
    await clean.store.ensure_embedding_space(clean.embedder.model_name, clean.embedder.dimension)
