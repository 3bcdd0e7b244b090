"""The embedded PostgreSQL: sharing between users and processes, SIGKILLed owners, crash recovery, bad DATA_DIR."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import ConfigError
from mcp_web_ingest.storage.db import Database, redact_conninfo


def _postmaster_pid(data_dir: Path) -> int | None:
    pidfile = data_dir / "pgdata" / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().split()[0])
    return pid if psutil.pid_exists(pid) else None


def _settings(data_dir: Path) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, allow_private_networks=True)  # type: ignore[call-arg]


async def test_two_users_in_one_process_share_the_server(tmp_path: Path) -> None:
    first, second = Database(_settings(tmp_path)), Database(_settings(tmp_path))
    await first.resolve_conninfo()
    await second.resolve_conninfo()
    pid = _postmaster_pid(tmp_path)
    assert pid is not None
    await first.aclose()
    assert _postmaster_pid(tmp_path) == pid  # still used by `second`
    with psycopg.connect(second.conninfo or "") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    await second.aclose()
    assert _postmaster_pid(tmp_path) is None  # the last user stopped it


_OWNER = """
import asyncio, sys, time, psycopg
from mcp_web_ingest.config import Settings
from mcp_web_ingest.storage.db import Database
async def main():
    db = Database(Settings(_env_file=None, data_dir=sys.argv[1]))
    conninfo = await db.resolve_conninfo()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    print("ready", flush=True)
    time.sleep(600)
asyncio.run(main())
"""


async def test_sigkilled_owner_and_server_recover(tmp_path: Path) -> None:
    owner = await asyncio.create_subprocess_exec(sys.executable, "-c", _OWNER, str(tmp_path), stdout=subprocess.PIPE)
    try:
        assert owner.stdout is not None
        assert (await asyncio.wait_for(owner.stdout.readline(), 60)).strip() == b"ready"
        owner.send_signal(signal.SIGKILL)
        await asyncio.wait_for(owner.wait(), 10)
    finally:
        if owner.returncode is None:
            owner.kill()
    postmaster = _postmaster_pid(tmp_path)
    assert postmaster is not None  # the database outlives its SIGKILLed owner
    handles = tmp_path / "pgdata" / ".handle_pids.json"
    assert owner.pid in json.loads(handles.read_text())

    # The next user attaches, prunes the dead owner, and is then the last user: closing stops the server.
    db = Database(_settings(tmp_path))
    await db.resolve_conninfo()
    assert owner.pid not in json.loads(handles.read_text())
    assert _postmaster_pid(tmp_path) == postmaster
    await db.aclose()
    assert _postmaster_pid(tmp_path) is None

    # Now kill the server itself mid-life: the next start runs crash recovery and committed rows survive.
    db = Database(_settings(tmp_path))
    await db.resolve_conninfo()
    postmaster = _postmaster_pid(tmp_path)
    assert postmaster is not None
    process = psutil.Process(postmaster)
    os.kill(postmaster, signal.SIGKILL)
    await asyncio.to_thread(process.wait, 10)
    await db.aclose()
    db = Database(_settings(tmp_path))
    conninfo = await db.resolve_conninfo()
    try:
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
    finally:
        await db.aclose()


async def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    db = Database(_settings(blocker / "data"))
    with pytest.raises(ConfigError, match=r"DATA_DIR .* is not writable"):
        await db.resolve_conninfo()


@pytest.mark.parametrize(
    ("conninfo", "redacted"),
    [
        ("postgresql://user:s3cret@db:5432/x", "postgresql://user:***@db:5432/x"),
        ("host=db password=s3cret dbname=x", "host=db password=*** dbname=x"),
        ("postgresql://postgres:@/db?host=/tmp", "postgresql://postgres:***@/db?host=/tmp"),
    ],
)
def test_redact_conninfo(conninfo: str, redacted: str) -> None:
    assert redact_conninfo(conninfo) == redacted
