"""An in-memory MCP client of a server sharing the test runtime, and a call that fails the test on a tool error."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from mcp import Client

from mcp_web_ingest.interface.server import create_server
from mcp_web_ingest.runtime import Runtime, RuntimeHolder


@contextlib.asynccontextmanager
async def connect(runtime: Runtime) -> AsyncIterator[Client]:
    """The SDK's in-memory client (auto protocol) of a server on ``runtime``."""
    server = create_server(runtime.settings, RuntimeHolder(runtime.settings, runtime))
    async with Client(server, mode="auto") as c:
        yield c


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    """A tool's structured result; the test fails with the tool's message when it is an error."""
    res = await client.call_tool(tool, args)
    assert not res.is_error, res.content
    assert res.structured_content is not None
    return res.structured_content
