"""The real server process over every transport: streamable HTTP, legacy SSE, stdio, and the MCP Inspector CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import LoggingMessageNotificationParams, PromptReference, TextResourceContents

from mcp_web_ingest.interface.resource_uris import page_uri
from mcp_web_ingest.runtime import Runtime

from .servers import CLI, running_server, server_env


@pytest.fixture(scope="module")
async def http_server(data_dir: Path, runtime: Runtime) -> AsyncIterator[str]:
    """`mcp-web-ingest serve` as a real process on a free port; yields its base URL."""
    async with running_server(data_dir) as server:
        yield server.base


async def test_health_and_metrics_endpoints(http_server: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(http_server + "/health") as r:
            assert r.status == 200 and r.content_type == "application/json"
            body = await r.json()
        assert body["status"] == "ok" and body["components"]["database"]["status"] == "ok"
        assert "conninfo" not in json.dumps(body) and "password" not in json.dumps(body)
        async with s.get(http_server + "/metrics") as r:
            assert r.status == 200
            text = await r.text()
        assert "web_index_duration_seconds_bucket" in text and "web_query_duration_seconds" in text


async def test_streamable_http_index_and_search(clean: Runtime, http_server: str, site_url: str) -> None:
    async with Client(http_server + "/mcp") as client:
        res = await client.call_tool("index_web_page", {"url": f"{site_url}/guide/install.html"})
        assert not res.is_error, res.content
        res = await client.call_tool("search", {"query": "what to do about a self-test checksum mismatch", "k": 3})
        hit = res.structured_content["results"][0]
        assert hit["url"] == f"{site_url}/guide/install.html"
        assert hit["deep_link"] == f"{site_url}/guide/install.html#verifying"
    async with aiohttp.ClientSession() as s, s.get(http_server + "/metrics") as r:
        text = await r.text()
    assert 'web_pages_indexed_total{outcome="indexed"} 1.0' in text


async def test_legacy_sse_transport(clean: Runtime, http_server: str, site_url: str) -> None:
    async with Client(sse_client(http_server + "/sse"), mode="legacy") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"index_web_page", "search", "health"} <= tools
        await client.call_tool("index_web_page", {"url": f"{site_url}/guide/config.html"})
        res = await client.call_tool("search", {"query": "compaction snapshots", "k": 2})
        assert res.structured_content["results"][0]["url"].endswith("/guide/config.html")


async def test_wrong_host_header_is_rejected(http_server: str) -> None:
    """DNS-rebinding protection: a request naming a foreign Host must not reach the MCP endpoint."""
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            http_server + "/mcp", headers={"Host": "evil.example", "Content-Type": "application/json"}, data="{}"
        ) as r,
    ):
        assert r.status in (400, 403, 421)


async def test_stdio_transport(clean: Runtime, data_dir: Path, site_url: str) -> None:
    params = StdioServerParameters(command=CLI, args=["serve", "--transport", "stdio"], env=server_env(data_dir))
    async with Client(params, mode="legacy") as client:
        res = await client.call_tool("index_web_page", {"url": f"{site_url}/guide/install.html"})
        assert not res.is_error, res.content
        res = await client.call_tool("search", {"query": "build from source prerequisites zlib", "k": 3})
        assert res.structured_content["results"][0]["deep_link"].endswith("#source-prerequisites")


async def _protocol_round(connect: Any, site_url: str) -> None:
    """Resources, completion, prompts and the log level through one transport (the server logs at WARNING)."""
    got: list[LoggingMessageNotificationParams] = []

    async def collect(params: LoggingMessageNotificationParams) -> None:
        got.append(params)

    page = f"{site_url}/guide/install.html"
    async with connect(logging_callback=collect) as client:
        res = await client.call_tool("index_web_page", {"url": page, "collection": "proto"})
        assert not res.is_error, res.content
        uri = page_uri("proto", page)
        assert uri in {str(r.uri) for r in (await client.list_resources()).resources}
        text = (await client.read_resource(uri)).contents[0]
        assert isinstance(text, TextResourceContents) and f'url: "{page}"' in text.text
        done = await client.complete(
            PromptReference(type="ref/prompt", name="answer_from_docs"), {"name": "collection", "value": "pro"}
        )
        assert done.completion.values == ["proto"]
        for prompt in (await client.list_prompts()).prompts:
            args = {
                a.name: "https://docs.example.org/" if a.name == "url" else "x"
                for a in prompt.arguments or []
                if a.required
            }
            rendered = await client.get_prompt(prompt.name, args)
            assert rendered.messages and rendered.messages[0].content.text  # type: ignore[union-attr]

        crawl = {"url": f"{site_url}/status/404", "max_pages": 2, "wait_seconds": 30}
        with pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("error")
        assert not (await client.call_tool("index_web_page", crawl)).is_error
        await asyncio.sleep(0.5)
        assert got == []  # the failed URL is a warning: below the level set
        with pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("warning")
        assert not (await client.call_tool("index_web_page", crawl)).is_error
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.1)
        assert got and all(p.level == "warning" for p in got), got
        assert any("/status/404 failed" in str(p.data) for p in got)


async def test_protocol_over_streamable_http(clean: Runtime, http_server: str, site_url: str) -> None:
    await _protocol_round(lambda **kw: Client(http_server + "/mcp", mode="legacy", **kw), site_url)


async def test_protocol_over_legacy_sse(clean: Runtime, http_server: str, site_url: str) -> None:
    await _protocol_round(lambda **kw: Client(sse_client(http_server + "/sse"), mode="legacy", **kw), site_url)


async def test_protocol_over_streamable_http_2026(clean: Runtime, http_server: str, site_url: str) -> None:
    """The 2026-07-28 era: the same resources, completion and prompts; logs only for a request that opts in."""
    got: list[LoggingMessageNotificationParams] = []

    async def collect(params: LoggingMessageNotificationParams) -> None:
        got.append(params)

    page = f"{site_url}/guide/config.html"
    async with Client(http_server + "/mcp", logging_callback=collect, log_level="warning") as client:
        assert client.protocol_version == "2026-07-28"
        assert not (await client.call_tool("index_web_page", {"url": page})).is_error
        uri = page_uri("default", page)
        assert uri in {str(r.uri) for r in (await client.list_resources()).resources}
        assert page in (await client.read_resource(uri)).contents[0].text  # type: ignore[union-attr]
        ref = PromptReference(type="ref/prompt", name="whats_new")
        assert (await client.complete(ref, {"name": "collection", "value": "def"})).completion.values == ["default"]
        assert (await client.get_prompt("whats_new", {})).messages
        crawl = {"url": f"{site_url}/status/404", "max_pages": 2, "wait_seconds": 30}
        assert not (await client.call_tool("index_web_page", crawl)).is_error
        assert [p.level for p in got] == ["warning"] and "/status/404 failed" in str(got[0].data)


async def test_protocol_over_stdio(clean: Runtime, data_dir: Path, site_url: str) -> None:
    params = StdioServerParameters(command=CLI, args=["serve", "--transport", "stdio"], env=server_env(data_dir))
    await _protocol_round(lambda **kw: Client(params, mode="legacy", **kw), site_url)


def _inspector() -> list[str]:
    exe = shutil.which("mcp-inspector")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("the MCP Inspector CLI is not installed (make node-tools)")
        pytest.skip("the MCP Inspector CLI is not installed (make node-tools)")
    return [exe, "--cli"]


async def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_inspector_cli_over_http(clean: Runtime, http_server: str, site_url: str) -> None:
    base = [*_inspector(), http_server + "/mcp"]
    rc, out, err = await _run([*base, "--method", "tools/list"])
    assert rc == 0, err
    names = {t["name"] for t in json.loads(out)["tools"]}
    assert {"index_web_page", "search", "health"} <= names
    page = f"{site_url}/guide/config.html"
    rc, out, err = await _run(
        [*base, "--method", "tools/call", "--tool-name", "index_web_page", "--tool-arg", f"url={page}"]
    )
    assert rc == 0, err + out
    rc, out, err = await _run(
        [*base, "--method", "tools/call", "--tool-name", "search", "--tool-arg", "query=retention file format"]
    )
    assert rc == 0, err
    result = json.loads(out)["structuredContent"]["results"][0]
    assert result["url"] == page and result["deep_link"].startswith(page + "#") and result["section"]
    rc, out, err = await _run([*base, "--method", "resources/list"])
    assert rc == 0, err
    listed = {r["uri"]: r for r in json.loads(out)["resources"]}
    assert page_uri("default", page) in listed and "webingest://default/pages" in listed
    assert listed[page_uri("default", page)]["mimeType"] == "text/markdown"
    rc, out, err = await _run([*base, "--method", "resources/read", "--uri", page_uri("default", page)])
    assert rc == 0, err
    assert f'url: "{page}"' in json.loads(out)["contents"][0]["text"]
    await _inspector_lists_templates_and_prompts(base, [])


async def _inspector_lists_templates_and_prompts(base: list[str], server: list[str]) -> None:
    rc, out, err = await _run([*base, "--method", "resources/templates/list", *server])
    assert rc == 0, err
    templates = {t["uriTemplate"] for t in json.loads(out)["resourceTemplates"]}
    assert templates == {"webingest://{collection}/page{?url}", "webingest://{collection}/pages"}
    rc, out, err = await _run([*base, "--method", "prompts/list", *server])
    assert rc == 0, err
    prompts = {p["name"]: p for p in json.loads(out)["prompts"]}
    assert set(prompts) == {"answer_from_docs", "index_docs_site", "whats_new"}
    assert {"name": "question", "description": "The question to answer", "required": True} in (
        prompts["answer_from_docs"]["arguments"]
    )


async def test_inspector_cli_over_stdio(clean: Runtime, data_dir: Path, site_url: str) -> None:
    env_args: list[str] = []
    for key, value in server_env(data_dir).items():
        if key in ("DATA_DIR", "HF_HUB_OFFLINE", "LOG_LEVEL", "XDG_RUNTIME_DIR", "ALLOW_PRIVATE_NETWORKS"):
            env_args += ["-e", f"{key}={value}"]
    # Options first, then `--`: the Inspector would otherwise take our `--transport` for its own.
    base = [*_inspector(), *env_args]
    server = ["--", CLI, "serve", "--transport", "stdio"]
    rc, out, err = await _run([*base, "--method", "tools/list", *server])
    assert rc == 0, err
    assert "search" in {t["name"] for t in json.loads(out)["tools"]}
    await clean.pipeline.index_page(f"{site_url}/guide/install.html")
    call = ["--method", "tools/call", "--tool-name", "search", "--tool-arg", "query=upgrade froobnicator"]
    rc, out, err = await _run([*base, *call, *server])
    assert rc == 0, err
    assert json.loads(out)["structuredContent"]["results"][0]["url"].endswith("/guide/install.html")
    rc, out, err = await _run([*base, "--method", "resources/list", *server])
    assert rc == 0, err
    assert page_uri("default", f"{site_url}/guide/install.html") in {r["uri"] for r in json.loads(out)["resources"]}
    await _inspector_lists_templates_and_prompts(base, server)


async def test_metrics_port_in_stdio_mode(clean: Runtime, data_dir: Path, site_url: str) -> None:
    """In stdio mode there is no HTTP app: METRICS_PORT serves Prometheus metrics beside it."""
    from .conftest import free_port

    port = free_port()
    params = StdioServerParameters(
        command=CLI, args=["serve", "--transport", "stdio"], env=server_env(data_dir, METRICS_PORT=str(port))
    )
    async with Client(params, mode="legacy") as client:
        await client.call_tool("index_web_page", {"url": f"{site_url}/guide/install.html"})
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
            assert r.status == 200
            text = await r.text()
    assert "web_pages_indexed_total" in text and "web_index_duration_seconds_bucket" in text


CONFORMANCE = (
    Path(__file__).resolve().parent.parent / ".tools/node_modules/@modelcontextprotocol/conformance/dist/index.js"
)


@pytest.mark.parametrize(
    "scenario",
    [
        "server-initialize",
        "ping",
        "tools-list",
        "dns-rebinding-protection",
        "logging-set-level",
        "completion-complete",
        "tools-call-error",
    ],
)
async def test_conformance_suite(http_server: str, scenario: str) -> None:
    """The MCP conformance suite's scenarios that apply to a real server (its tool scenarios need test tools)."""
    node = shutil.which("node")
    if not CONFORMANCE.exists() or node is None:
        if os.environ.get("CI"):
            pytest.fail("the MCP conformance suite is not installed (make node-tools)")
        pytest.skip("the MCP conformance suite is not installed (make node-tools)")
    rc, out, err = await _run([node, str(CONFORMANCE), "server", "--url", http_server + "/mcp", "--scenario", scenario])
    assert rc == 0, out + err
    assert " 0 failed" in out and "Passed:" in out, out
