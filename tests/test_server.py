"""MCP end to end with the SDK's real client, in memory (both protocol eras): tools, schemas, errors, progress."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from mcp import Client

from mcp_web_ingest.interface.server import create_server
from mcp_web_ingest.runtime import Runtime, RuntimeHolder

pytestmark = pytest.mark.both_backends


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    """Protocol era: 'legacy' (initialize handshake, what Inspector and Claude speak today) or 'auto' (2026-07-28)."""
    return str(request.param)


@contextlib.asynccontextmanager
async def connect(runtime: Runtime, mode: str) -> AsyncIterator[Client]:
    """An in-memory MCP client of a server sharing the test runtime.

    A context manager, not a yield fixture: the client's task group must be entered and exited in the same task.
    """
    server = create_server(runtime.settings, RuntimeHolder(runtime.settings, runtime))
    async with Client(server, mode=mode) as c:  # type: ignore[arg-type]
        yield c


async def test_tools_are_described_typed_and_annotated(clean: Runtime, mode: str) -> None:
    async with connect(clean, mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {
            "index_web_page",
            "search",
            "health",
            "crawl_status",
            "cancel_crawl",
            "list_sources",
            "delete_source",
            "refresh_source",
            "read_page",
            "what_changed",
        } == tools.keys()
        for tool in tools.values():
            assert tool.description and len(tool.description) > 60
            assert tool.annotations is not None and tool.output_schema is not None
            for name, prop in tool.input_schema.get("properties", {}).items():
                assert prop.get("description"), f"{tool.name}.{name} has no description"
        assert tools["search"].annotations.read_only_hint is True
        assert tools["index_web_page"].annotations.read_only_hint is False
        assert tools["index_web_page"].annotations.open_world_hint is True
        assert tools["search"].input_schema["required"] == ["query"]
        assert set(tools["search"].input_schema["properties"]) == {
            "query",
            "k",
            "collection",
            "url_prefix",
            "mode",
            "max_chars",
            "rerank",
            "symbol",
            "version",
        }


async def test_index_and_search_over_mcp(clean: Runtime, mode: str, site_url: str) -> None:
    async with connect(clean, mode) as client:
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        res = await client.call_tool(
            "index_web_page", {"url": f"{site_url}/guide/config.html"}, progress_callback=on_progress
        )
        assert not res.is_error, res.content
        data = res.structured_content
        assert data is not None and data["kind"] == "page" and data["job"] is None
        page = data["page"]
        assert page["chunks"] >= 3 and page["unchanged"] is False
        assert page["title"] == "Configuring quux retention windows"
        assert "indexed" in data["message"]
        assert progress and progress[-1][0] == progress[-1][1]

        res = await client.call_tool("search", {"query": "which retention window wins when several apply?", "k": 3})
        assert not res.is_error, res.content
        hits = res.structured_content["results"]
        assert hits[0]["url"] == f"{site_url}/guide/config.html"
        assert hits[0]["deep_link"] == f"{site_url}/guide/config.html#window-precedence"
        assert hits[0]["section"].startswith("Configuring quux retention windows › ")
        assert {leg["leg"] for leg in hits[0]["legs"]} == {"dense", "lexical"}
        assert hits[0]["rank"] == 1 and hits[0]["score"] > 0
        also = [s for hit in hits for s in hit["also_matched"]]  # other sections of a result's page that matched
        assert all(s["deep_link"].startswith(f"{site_url}/guide/") and s["section"] for s in also)
        shown = {(hit["url"], hit["section"]) for hit in hits}
        assert not any((s["deep_link"].split("#")[0], s["section"]) in shown for s in also)


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("index_web_page", {"url": "not a url"}, "http"),
        ("index_web_page", {"url": "ftp://example.org/"}, "ftp"),
        ("index_web_page", {"url": "{site}/status/404"}, "404"),
        ("index_web_page", {"url": "{site}/crawl/static/logo.png"}, "image/png"),
        ("search", {"query": ""}, "empty"),
        ("search", {"query": "x", "k": 0}, "k must be"),
    ],
)
async def test_bad_input_is_a_clear_tool_error(
    clean: Runtime, mode: str, site_url: str, tool: str, args: dict, fragment: str
) -> None:
    async with connect(clean, mode) as client:
        args = {k: v.format(site=site_url) if isinstance(v, str) else v for k, v in args.items()}
        res = await client.call_tool(tool, args)
        assert res.is_error
        text = " ".join(getattr(c, "text", "") for c in res.content)
        assert fragment.lower() in text.lower(), text
        assert text.strip() != f"Error executing tool {tool}"  # the bare form means an exception escaped untranslated


async def test_health_tool(clean: Runtime, mode: str, site_url: str) -> None:
    async with connect(clean, mode) as client:
        await client.call_tool("index_web_page", {"url": f"{site_url}/guide/install.html"})
        res = await client.call_tool("health", {})
        data = res.structured_content
        assert data["status"] == "ok"
        assert data["pipeline"] == "unified"
        store = clean.settings.vector_store
        assert data["components"]["database"] == {"status": "ok", "embedded": True, "vector_store": store}
        if store == "qdrant":
            assert data["components"]["qdrant"]["status"] == "ok" and data["components"]["qdrant"]["mode"] == "local"
            assert data["components"]["qdrant"]["points"] == data["counts"]["chunks"]
        assert data["embedding"] == {"model": "sentence-transformers/all-MiniLM-L6-v2", "dimension": 384}
        assert data["counts"]["pages"] == 1 and data["counts"]["chunks"] >= 3
