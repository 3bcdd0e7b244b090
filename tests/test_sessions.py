"""Session floods over real HTTP: per-client caps, idle sessions evicted, room kept for new clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mcp_web_ingest.runtime import Runtime

from .servers import running_server
from .test_auth import INITIALIZE, MCP_HEADERS

PER_CLIENT = 5
MAX_SESSIONS = 8


@pytest.fixture(scope="module")
async def limited(data_dir: Path, runtime: Runtime) -> AsyncIterator[str]:
    """A server allowing 5 sessions per client address and 8 in all."""
    env = {"MCP_MAX_SESSIONS_PER_CLIENT": str(PER_CLIENT), "MCP_MAX_SESSIONS": str(MAX_SESSIONS)}
    async with running_server(data_dir, **env) as server:
        yield server.base


def _from(address: str) -> aiohttp.ClientSession:
    """A client whose connections come from ``address`` (any 127.0.0.0/8 address works as a source on Linux)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), force_close=True))


async def _initialize(s: aiohttp.ClientSession, base: str) -> tuple[int, str | None]:
    async with s.post(base + "/mcp", json=INITIALIZE, headers=MCP_HEADERS) as r:
        await r.read()
        return r.status, r.headers.get("mcp-session-id")


async def _ping(s: aiohttp.ClientSession, base: str, session_id: str) -> int:
    headers = {**MCP_HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"}
    async with s.post(base + "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers=headers) as r:
        await r.read()
        return r.status


async def _open_sessions(base: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(base + "/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith('mcp_sessions_open{transport="streamable-http"}'):
                return float(line.split()[-1])
    raise AssertionError("mcp_sessions_open not exported")


async def test_a_flood_from_one_address_evicts_its_own_idle_sessions(limited: str) -> None:
    async with _from("127.0.0.3") as flooder:
        ids = []
        for _ in range(40):
            status, session_id = await _initialize(flooder, limited)
            assert status == 200 and session_id
            ids.append(session_id)
        # The newest sessions live, the oldest were closed to make room (404: the client initializes again).
        assert await _ping(flooder, limited, ids[-1]) == 200
        assert await _ping(flooder, limited, ids[0]) == 404
        assert await _open_sessions(limited) <= MAX_SESSIONS
    async with _from("127.0.0.4") as newcomer:
        status, session_id = await _initialize(newcomer, limited)
        assert status == 200 and session_id
        assert await _ping(newcomer, limited, session_id) == 200


async def test_busy_sessions_are_never_evicted(limited: str) -> None:
    async with _from("127.0.0.5") as client:
        ids = [sid for _, sid in [await _initialize(client, limited) for _ in range(PER_CLIENT)]]
        assert all(ids)
        streams = []
        try:
            for session_id in ids:  # an open GET stream keeps a session busy
                headers = {"Accept": "text/event-stream", "mcp-session-id": str(session_id)}
                headers["mcp-protocol-version"] = "2025-11-25"
                streams.append(await client.get(limited + "/mcp", headers=headers))
            assert all(r.status == 200 for r in streams)
            status, _ = await _initialize(client, limited)
            assert status == 429
        finally:
            for r in streams:
                r.close()
        await asyncio.sleep(0.2)
        status, _ = await _initialize(client, limited)
        assert status == 200


async def test_sse_streams_are_capped_per_address(limited: str) -> None:
    async with _from("127.0.0.6") as client:
        streams = []
        try:
            for _ in range(PER_CLIENT):
                r = await client.get(limited + "/sse", headers={"Accept": "text/event-stream"})
                assert r.status == 200
                streams.append(r)
            async with client.get(limited + "/sse", headers={"Accept": "text/event-stream"}) as r:
                assert r.status == 429
        finally:
            for r in streams:
                with contextlib.suppress(Exception):
                    r.close()
