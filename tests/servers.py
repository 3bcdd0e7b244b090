"""`mcp-web-ingest serve` as a real subprocess for tests: environment, start-up wait, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from .conftest import free_port

CLI = str(Path(sys.executable).parent / "mcp-web-ingest")


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a server subprocess sharing the session's embedded database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MCP_", "EMBEDDING_"))}
    # The test site and services live on 127.0.0.1: allow the SSRF guard to reach them.
    env.update(DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", LOG_LEVEL="WARNING", ALLOW_PRIVATE_NETWORKS="true", **extra)
    return env


@dataclass
class ServerProcess:
    """A running server: its process and base URL."""

    proc: asyncio.subprocess.Process
    base: str

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    async def stop(self) -> None:
        """Terminate gracefully (SIGTERM), killing it if it does not exit within 20 s."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start_server(data_dir: Path, **env: str) -> ServerProcess:
    """Start `mcp-web-ingest serve` on a free port and wait until GET /health answers 200 (60 s at most)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "serve",
        "--port",
        str(port),
        env=server_env(data_dir, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    host = env.get("MCP_HOST", "127.0.0.1")
    server = ServerProcess(proc, f"http://{f'[{host}]' if ':' in host else host}:{port}")
    async with aiohttp.ClientSession() as s:
        for _ in range(240):
            if proc.returncode is not None:
                err = await proc.stderr.read() if proc.stderr else b""
                pytest.fail(f"server exited early: {err.decode()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(server.base + "/health") as r:
                    if r.status == 200:
                        return server
            await asyncio.sleep(0.25)
    await server.stop()
    pytest.fail("server did not become healthy within 60 s")


@contextlib.asynccontextmanager
async def running_server(data_dir: Path, **env: str) -> AsyncIterator[ServerProcess]:
    """A server for the duration of the block."""
    server = await start_server(data_dir, **env)
    try:
        yield server
    finally:
        await server.stop()
