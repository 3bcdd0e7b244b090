"""HTTP transport protection: bearer token, bind rules, Host validation, and no secrets in /health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_web_ingest.config import Settings
from mcp_web_ingest.interface.auth import HostPolicy, is_loopback
from mcp_web_ingest.interface.cli import main
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


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **kw)  # type: ignore[call-arg]


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.2", "127.5.0.1", "localhost", "::1"])
def test_loopback_binds_answer_only_loopback_names(tmp_path: Path, bind: str) -> None:
    policy = HostPolicy.for_bind(_settings(tmp_path), bind)
    for ok in ("127.0.0.1:3000", "127.0.0.2:3000", "localhost:3000", "localhost", "[::1]:3000", "LOCALHOST.:1"):
        assert policy.host_allowed(ok), ok
    for bad in ("attacker.example:3000", "attacker.example", "10.0.0.5:3000", "", "evil@127.0.0.1", "a b", "[::1"):
        assert not policy.host_allowed(bad), bad
    assert policy.origin_allowed(None) and policy.origin_allowed("http://localhost:6274")
    for bad in ("http://attacker.example:3000", "null", "file://", "https://127.0.0.1.attacker.example"):
        assert not policy.origin_allowed(bad), bad


def test_wide_binds_answer_addresses_and_configured_names(tmp_path: Path) -> None:
    s = _settings(tmp_path, mcp_allowed_hosts=["mcp.example.org:*", "pinned.example:8443"])
    policy = HostPolicy.for_bind(s, "0.0.0.0")
    for ok in ("10.0.0.5:3000", "[2001:db8::1]:3000", "mcp.example.org", "mcp.example.org:9", "pinned.example:8443"):
        assert policy.host_allowed(ok), ok
    for bad in ("attacker.example:3000", "pinned.example:8444", "pinned.example"):
        assert not policy.host_allowed(bad), bad
    assert HostPolicy.for_bind(_settings(tmp_path, mcp_allowed_hosts=["*"]), "0.0.0.0").host_allowed("any.example")
    origins = HostPolicy.for_bind(_settings(tmp_path, mcp_allowed_origins=["https://app.example"]), "127.0.0.1")
    assert origins.origin_allowed("https://app.example/") and not origins.origin_allowed("https://other.example")


@pytest.mark.parametrize("token", ["", "   "])
def test_empty_token_means_no_token(tmp_path: Path, token: str) -> None:
    assert _settings(tmp_path, mcp_auth_token=token).mcp_auth_token is None


@pytest.mark.parametrize("token", ["short", "x" * 15, " padded-token-of-length "])
def test_weak_tokens_are_refused(tmp_path: Path, token: str) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        _settings(tmp_path, mcp_auth_token=token)


def test_empty_token_does_not_open_a_wide_bind(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MCP_AUTH_TOKEN", "")
    assert main(["serve", "--host", "0.0.0.0", "--port", str(free_port())]) == 2
    assert "MCP_AUTH_TOKEN" in capsys.readouterr().err


def test_metrics_auth_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="METRICS_REQUIRE_AUTH"):
        _settings(tmp_path, metrics_require_auth=True)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
async def other_loopback(data_dir: Path, runtime: Runtime) -> AsyncIterator[str]:
    """A server bound to 127.0.0.2, which the SDK's own rebinding check does not cover."""
    async with running_server(data_dir, MCP_HOST="127.0.0.2") as server:
        yield server.base


async def test_rebinding_refused_on_any_loopback_address(other_loopback: str) -> None:
    port = other_loopback.rsplit(":", 1)[1]
    foreign = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
    async with aiohttp.ClientSession() as s:
        async with s.post(other_loopback + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **foreign}) as r:
            assert r.status == 421 and "MCP_ALLOWED_HOSTS" in await r.text()
        for path in ("/health", "/metrics", "/sse"):
            async with s.get(other_loopback + path, headers=foreign) as r:
                assert r.status == 421, path
        # A page from another origin is refused even when it reaches the server by its own address.
        evil_origin = {"Origin": "http://attacker.example"}
        async with s.post(other_loopback + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **evil_origin}) as r:
            assert r.status == 403
        async with s.post(other_loopback + "/mcp", json=INITIALIZE, headers=MCP_HEADERS) as r:
            assert r.status == 200 and r.headers["mcp-session-id"]
        async with s.get(other_loopback + "/health") as r:
            assert r.status == 200


async def test_metrics_port_requires_the_token(data_dir: Path, runtime: Runtime) -> None:
    metrics_port = free_port()
    env = {"MCP_AUTH_TOKEN": TOKEN, "METRICS_REQUIRE_AUTH": "true", "METRICS_PORT": str(metrics_port)}
    async with running_server(data_dir, **env), aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        async with s.get(url) as r:
            assert r.status == 401
        async with s.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200 and "web_pages_indexed" in await r.text()
        async with s.get(url, headers={"Authorization": f"Bearer {TOKEN}", "Host": "attacker.example"}) as r:
            assert r.status == 421
