"""Bounds on MCP sessions over HTTP: per client address and in all, idle ones evicted first so new clients get in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

SESSION_HEADER = b"mcp-session-id"


@dataclass
class _Session:
    client: str
    last_used: float
    in_flight: int = 0


def _client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _json_error(send: Send, status: int, message: str) -> None:
    body = ('{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"' + message + '"}}').encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SessionLimitMiddleware:
    """Caps MCP sessions per client address and in all; at a cap the least recently used idle session is closed.

    Streamable-HTTP sessions are followed through their headers (created by a response carrying `mcp-session-id`,
    gone after a DELETE or a 404) and closed with a DELETE of our own, so the SDK's session manager stays the one
    owner of session state. Legacy SSE sessions live as long as their stream, so those streams are counted instead.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_sessions: int,
        per_client: int,
        idle_timeout_s: float,
        mcp_path: str = "/mcp",
        sse_path: str = "/sse",
        observe: Callable[[int, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.max_sessions = max_sessions
        self.per_client = per_client or max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.mcp_path = mcp_path
        self.sse_path = sse_path
        self.observe = observe
        self.clock = clock
        self.sessions: dict[str, _Session] = {}
        self.opening: dict[str, int] = {}  # initialize requests in flight, per client
        self.streams: dict[str, int] = {}  # open legacy SSE streams, per client
        self.evicted = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route /mcp and /sse through the bookkeeping; everything else passes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/") or "/"
        if path == self.mcp_path:
            try:
                await self._streamable(scope, receive, send)
            finally:
                self._report()
        elif path == self.sse_path and scope["method"] == "GET":
            await self._sse(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _report(self) -> None:
        if self.observe is not None:
            self.observe(*self.counts())

    def counts(self) -> tuple[int, int]:
        """(streamable-HTTP sessions, SSE streams) open now."""
        return len(self.sessions), sum(self.streams.values())

    async def _streamable(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = dict(scope["headers"]).get(SESSION_HEADER, b"").decode("latin-1")
        if session_id:
            await self._existing(session_id, scope, receive, send)
        elif scope["method"] == "POST":
            await self._opening(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _existing(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        session = self.sessions.get(session_id)
        if session is None:
            await self.app(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        session.in_flight += 1
        session.last_used = self.clock()
        try:
            await self.app(scope, receive, watch)
        finally:
            session.in_flight -= 1
            session.last_used = self.clock()
            if status == 404 or (scope["method"] == "DELETE" and status < 400):
                self.sessions.pop(session_id, None)

    async def _opening(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = _client_of(scope)
        self._expire()
        if not await self._make_room(client, scope):
            await _json_error(send, 429, "Too many open MCP sessions from this address; close idle ones (DELETE)")
            return
        created: list[str] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and int(message["status"]) < 400:
                created.extend(v.decode("latin-1") for k, v in message.get("headers", ()) if k == SESSION_HEADER)
            await send(message)

        self.opening[client] = self.opening.get(client, 0) + 1
        try:
            await self.app(scope, receive, watch)
        finally:
            self.opening[client] -= 1
            if not self.opening[client]:
                del self.opening[client]
            for session_id in created:
                self.sessions[session_id] = _Session(client, self.clock())

    async def _make_room(self, client: str, scope: Scope) -> bool:
        """Evict idle sessions until the client and the server are under their caps; False if none can go."""
        while self._count(client) >= self.per_client:
            if not await self._evict(scope, client):
                return False
        while len(self.sessions) + sum(self.opening.values()) >= self.max_sessions:
            if not await self._evict(scope, None):
                return False
        return True

    def _count(self, client: str) -> int:
        return sum(1 for s in self.sessions.values() if s.client == client) + self.opening.get(client, 0)

    def _expire(self) -> None:
        # The SDK closes a session after the same idle time; forgetting it here keeps the counts honest.
        cutoff = self.clock() - self.idle_timeout_s
        for session_id in [i for i, s in self.sessions.items() if not s.in_flight and s.last_used < cutoff]:
            del self.sessions[session_id]

    async def _evict(self, scope: Scope, client: str | None) -> bool:
        idle = [(s.last_used, i) for i, s in self.sessions.items() if not s.in_flight and client in (None, s.client)]
        if not idle:
            return False
        _, session_id = min(idle)
        del self.sessions[session_id]
        self.evicted += 1
        log.info("closing idle MCP session %s… to admit a new one (session limit reached)", session_id[:8])
        await self._delete(scope, session_id)
        return True

    async def _delete(self, scope: Scope, session_id: str) -> None:
        """Close a session through the SDK's own DELETE handling, as its client could."""
        keep = {b"host", b"authorization", b"mcp-protocol-version"}
        headers = [(k, v) for k, v in scope["headers"] if k in keep]
        headers.append((SESSION_HEADER, session_id.encode("latin-1")))
        delete_scope = {**scope, "method": "DELETE", "headers": headers, "query_string": b""}

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def discard(_: Message) -> None:
            return None

        await self.app(delete_scope, receive, discard)

    async def _sse(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = _client_of(scope)
        if self.streams.get(client, 0) >= self.per_client or sum(self.streams.values()) >= self.max_sessions:
            await _json_error(send, 429, "Too many open SSE streams from this address or in all")
            return
        self.streams[client] = self.streams.get(client, 0) + 1
        self._report()
        try:
            await self.app(scope, receive, send)
        finally:
            self.streams[client] -= 1
            if not self.streams[client]:
                del self.streams[client]
            self._report()
