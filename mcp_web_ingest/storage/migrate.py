"""Numbered SQL migrations with up and down parts, tracked in schema_migrations, each in its own transaction."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from mcp_web_ingest.errors import StoreError

# A link to the top-level migrations/ in a checkout; the SQL files themselves in an installed wheel.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_UP = "-- migrate:up"
_DOWN = "-- migrate:down"


@dataclass(frozen=True)
class Migration:
    """One migration file split into its up and down SQL."""

    version: int
    name: str
    up: str
    down: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read NNNN_name.sql files in version order; each holds '-- migrate:up' then '-- migrate:down'."""
    if not directory.is_dir():
        raise StoreError(f"Migrations directory {directory} not found")
    found: list[Migration] = []
    for path in sorted(directory.iterdir()):
        m = _NAME.match(path.name)
        if not m:
            continue
        text = path.read_text()
        if _UP not in text or _DOWN not in text:
            raise StoreError(f"{path.name} must contain '{_UP}' and '{_DOWN}' sections")
        up, down = text.split(_UP, 1)[1].split(_DOWN, 1)
        found.append(Migration(int(m.group(1)), m.group(2), up.strip(), down.strip()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError("Two migrations share a version number")
    return found


_TRACKING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def _check_vector_available(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if row is None:
        raise StoreError(
            "The PostgreSQL server has no 'vector' extension (pgvector). Install pgvector on the server "
            "(e.g. use the pgvector/pgvector:pg15 image or your distribution's postgresql-15-pgvector package), "
            "or unset POSTGRES_CONNECTION_STRING to use the embedded PostgreSQL."
        )


def applied_versions(conn: psycopg.Connection) -> dict[int, str]:
    """Versions recorded in schema_migrations (empty when the table does not exist yet)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    if not exists or exists[0] is None:
        return {}
    return {v: n for v, n in conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")}


def migrate_up(conninfo: str, target: int | None = None, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply pending migrations up to target (all by default); returns those applied."""
    migrations = load_migrations(directory)
    done: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        _check_vector_available(conn)
        # One migrator at a time, even with two servers starting on the same database.
        conn.execute("SELECT pg_advisory_lock(727274)")
        try:
            conn.execute(_TRACKING)
            applied = applied_versions(conn)
            for m in migrations:
                if m.version in applied or (target is not None and m.version > target):
                    continue
                with conn.transaction():
                    conn.execute(m.up)
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (m.version, m.name))
                done.append(m)
        finally:
            conn.execute("SELECT pg_advisory_unlock(727274)")
    return done


def migrate_down(conninfo: str, steps: int = 1, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Revert the newest `steps` applied migrations; returns those reverted."""
    by_version = {m.version: m for m in load_migrations(directory)}
    undone: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(727274)")
        try:
            applied = sorted(applied_versions(conn), reverse=True)[:steps]
            for version in applied:
                m = by_version.get(version)
                if m is None:
                    raise StoreError(f"Migration {version} is applied but its file is missing; cannot revert it")
                with conn.transaction():
                    conn.execute(m.down)
                    conn.execute("DELETE FROM schema_migrations WHERE version = %s", (version,))
                undone.append(m)
        finally:
            conn.execute("SELECT pg_advisory_unlock(727274)")
    return undone


def migration_status(conninfo: str, directory: Path = MIGRATIONS_DIR) -> list[tuple[Migration, bool]]:
    """Every known migration with whether it is applied."""
    migrations = load_migrations(directory)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        applied = applied_versions(conn)
    return [(m, m.version in applied) for m in migrations]
