"""The two places this package reaches below MCPServer's public API, kept here so an SDK upgrade breaks one module.

MCPServer (mcp 2.3.0, pinned) has no public way to register `logging/setLevel`, `resources/subscribe`, or a
paginated `resources/list`, and hands request handlers a context without the per-client connection (whose state
and teardown hold a session's log level and subscriptions). tests/test_protocol*.py cover each use.
"""

from __future__ import annotations

from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer

__all__ = ["connection_of", "lowlevel"]


def lowlevel(mcp: MCPServer) -> Server[Any]:
    """The low-level server under an MCPServer, where request handlers are registered by method."""
    return mcp._lowlevel_server  # no public accessor in 2.3.0


def connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection:
    """The client connection a request arrived on (its `state` and `exit_stack` outlive the request)."""
    return ctx.session._connection  # ServerRequestContext does not expose it in 2.3.0
