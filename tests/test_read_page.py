"""read_page over MCP: a stored page read back as markdown, whole or from a section, within a budget; never fetched."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from mcp_web_ingest.interface.server import create_server
from mcp_web_ingest.runtime import Runtime, RuntimeHolder

pytestmark = pytest.mark.both_backends

HEADINGS = [
    "Configuring quux retention windows",
    "The retention file",
    "Setting windows from Python",
    "Window precedence",
    "Compaction and snapshots",
]


@contextlib.asynccontextmanager
async def connect(runtime: Runtime) -> AsyncIterator[Client]:
    """An in-memory MCP client of a server sharing the test runtime."""
    server = create_server(runtime.settings, RuntimeHolder(runtime.settings, runtime))
    async with Client(server, mode="auto") as c:
        yield c


async def read(client: Client, **args: Any) -> dict[str, Any]:
    res = await client.call_tool("read_page", args)
    assert not res.is_error, res.content
    assert res.structured_content is not None
    return res.structured_content


async def error(client: Client, **args: Any) -> str:
    res = await client.call_tool("read_page", args)
    assert res.is_error
    return " ".join(getattr(c, "text", "") for c in res.content)


async def test_whole_page_with_its_outline(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/guide/config.html"
    async with connect(clean) as client:
        await client.call_tool("index_web_page", {"url": url})
        page = await read(client, url=url)
    assert page["url"] == url and page["title"] == HEADINGS[0] and not page["from_chunks"]
    assert [e["heading"] for e in page["outline"]] == HEADINGS
    assert page["outline"][3]["deep_link"] == f"{url}#window-precedence" and page["outline"][3]["level"] == 3
    md = page["markdown"]
    assert md.startswith("# Configuring quux retention windows")
    positions = [md.index(f"{'#' * e['level']} {e['heading']}\n") for e in page["outline"]]
    assert positions == sorted(positions)  # every heading, in page order
    assert "Navigation" not in md and "Table of Contents" not in md  # stored text, not the raw page
    assert (page["first_section"], page["last_section"], page["next_section"]) == (0, 4, None)
    assert not page["truncated"]


async def test_from_a_deep_link_a_heading_or_an_index(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/guide/config.html"
    async with connect(clean) as client:
        await client.call_tool("index_web_page", {"url": url})
        by_link = await read(client, url=f"{url}#window-precedence")
        by_heading = await read(client, url=url, section="compaction AND snapshots")
        by_index = await read(client, url=url, from_section=2)
    assert by_link["markdown"].startswith("### Window precedence") and by_link["first_section"] == 3
    assert by_heading["markdown"].startswith("## Compaction and snapshots") and by_heading["next_section"] is None
    assert by_index["markdown"].startswith("## Setting windows from Python")


async def test_the_budget_pages_through_every_section_once(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/guide/config.html"
    async with connect(clean) as client:
        await client.call_tool("index_web_page", {"url": url})
        whole = await read(client, url=url)
        parts, start = [], 0
        while start is not None:
            part = await read(client, url=url, from_section=start, max_chars=500)
            assert len(part["markdown"]) <= 500
            parts.append(part)
            start = part["next_section"]
    assert len(parts) > 1
    shown = [i for p in parts for i in range(p["first_section"], p["last_section"] + 1)]
    assert shown == list(range(len(whole["outline"])))
    if not any(p["truncated"] for p in parts):
        assert "\n\n".join(p["markdown"] for p in parts) == whole["markdown"]


async def test_by_page_id_and_from_chunks_for_pages_stored_before_sections(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/guide/install.html"
    async with connect(clean) as client:
        await client.call_tool("index_web_page", {"url": url})
        stored = await clean.store.catalog.get_page("default", url)
        assert stored is not None
        exact = await read(client, page_id=stored.id)
        async with clean.db.pool.connection() as conn:
            await conn.execute("DELETE FROM page_sections WHERE page_id = %s", (stored.id,))
        rebuilt = await read(client, url=url)
    assert exact["url"] == url and not exact["from_chunks"]
    assert rebuilt["from_chunks"] and rebuilt["page_id"] == stored.id
    for entry in exact["outline"][1:]:  # every section's heading survives the rebuild
        assert entry["heading"] in [e["heading"] for e in rebuilt["outline"]]


async def test_a_changed_page_replaces_its_sections_and_deleting_it_removes_them(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/guide/config.html"
    async with connect(clean) as client:
        await client.call_tool("index_web_page", {"url": url})
        await client.call_tool("index_web_page", {"url": url, "force": True})
        page = await read(client, url=url)
        assert [e["heading"] for e in page["outline"]] == HEADINGS  # not twice
        await client.call_tool("delete_source", {"collection": "default"})
        async with clean.db.pool.connection() as conn:
            left = (await (await conn.execute("SELECT count(*) FROM page_sections")).fetchone())[0]
        assert left == 0


async def test_clear_errors(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/guide/config.html"
    async with connect(clean) as client:
        missing = await error(client, url=f"{site_url}/guide/never-indexed.html")
        assert "not indexed" in missing and "index_web_page" in missing
        await client.call_tool("index_web_page", {"url": url})
        assert "either url" in await error(client)
        assert "either url" in await error(client, url=url, page_id=1)
        wrong = await error(client, url=url, section="no such part")
        assert "no section" in wrong and "The retention file" in wrong
        assert "from_section" in await error(client, url=url, from_section=99)
        assert "not indexed" in await error(client, url=url, collection="elsewhere")
        assert "javascript" in (await error(client, url="javascript:alert(1)")).lower()
