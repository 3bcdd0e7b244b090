"""HTTP transport protection: bearer token, bind rules, Host validation, and no secrets in /health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_web_ingest.auth import is_loopback, transport_security
from mcp_web_ingest.cli import main
from mcp_web_ingest.config import Settings
from mcp_web_ingest.runtime import Runtime

from .conftest import free_port
from .servers import running_server

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
async def protected(data_dir: Path, runtime: Runtime) -> AsyncIterator[str]:
    """A server requiring MCP_AUTH_TOKEN (and the token for /metrics too)."""
    async with running_server(data_dir, MCP_AUTH_TOKEN=TOKEN, METRICS_REQUIRE_AUTH="true") as server:
        yield server.base


async def test_token_required_except_for_health(protected: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(protected + "/mcp", json={}) as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        async with s.post(protected + "/mcp", json={}, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        async with s.get(protected + "/metrics") as r:
            assert r.status == 401
        async with s.get(protected + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200
        async with s.get(protected + "/sse") as r:
            assert r.status == 401
        async with s.get(protected + "/health") as r:
            assert r.status == 200
            assert TOKEN not in await r.text()


async def test_mcp_client_with_token(protected: str) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
    async with http, Client(streamable_http_client(protected + "/mcp", http_client=http)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "search" in tools


def test_binding_beyond_loopback_needs_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MCP_AUTH_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "MCP_AUTH_TOKEN" in err and "--insecure-no-auth" in err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.5.0.1", True),
        ("0.0.0.0", False),
        ("10.0.0.2", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_host_validation_beyond_loopback(tmp_path: Path) -> None:
    s = Settings(_env_file=None, data_dir=tmp_path, mcp_allowed_hosts=["mcp.example.org:*"])  # type: ignore[call-arg]
    security = transport_security(s, "0.0.0.0")
    assert security is not None and security.enable_dns_rebinding_protection
    assert "mcp.example.org:*" in security.allowed_hosts
    assert transport_security(s, "127.0.0.1") is None  # the SDK's own loopback protection applies
