"""tools/smoke.py (make smoke) against a real `mcp-web-ingest serve` process, and against nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_web_ingest.runtime import Runtime

from .conftest import free_port
from .servers import running_server

SMOKE = str(Path(__file__).resolve().parent.parent / "tools" / "smoke.py")
STEPS = ("health-http", "metrics", "mcp-connect", "health-tool", "index", "search", "metrics-moved", "cleanup")


@pytest.fixture(scope="module")
async def smoke_server(data_dir: Path, runtime: Runtime) -> AsyncIterator[str]:
    """`mcp-web-ingest serve` on a free port, sharing the session's embedded database; yields its base URL."""
    async with running_server(data_dir) as server:
        yield server.base


async def _smoke(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SMOKE, *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    return proc.returncode or 0, out.decode()


async def test_smoke_passes_against_a_running_server(smoke_server: str, runtime: Runtime) -> None:
    code, out = await _smoke("--url", smoke_server, "--timeout", "90")
    print(out)
    assert code == 0, out
    for step in STEPS:
        assert any(line.startswith(f"PASS  {step} ") for line in out.splitlines()), f"{step} did not pass:\n{out}"
    assert "FAIL" not in out and out.rstrip().endswith("smoke test PASSED")
    # It cleaned up after itself: nothing is left in its collection.
    assert not [s for s in await runtime.store.catalog.list_sources() if s.get("collection") == "smoke-test"]


async def test_smoke_fails_clearly_when_no_server_listens() -> None:
    port = free_port()
    code, out = await _smoke("--url", f"http://127.0.0.1:{port}", "--timeout", "10")
    assert code == 1, out
    first = next(line for line in out.splitlines() if line.startswith(("PASS", "FAIL")))
    assert first.startswith("FAIL  health-http") and "cannot connect" in first and str(port) in first
    assert "SKIP  index" in out and out.rstrip().endswith("smoke test FAILED")


def test_smoke_needs_a_query_with_a_page() -> None:
    proc = subprocess.run(
        [sys.executable, SMOKE, "--page", "https://example.org/"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "--query" in proc.stderr
