"""The server's own log as MCP `notifications/message`, each client at the level it asked for.

Protocol 2025-11-25 and earlier: `logging/setLevel` starts a session's log stream; from then on every record this
package logs at that level or above (crawl milestones, refused and failed URLs, paused jobs, services that fail)
reaches the session on its standalone channel, until it sets another level or disconnects. A session that never
sets a level gets nothing. Protocol 2026-07-28 has no `logging/setLevel`: a request whose `_meta` carries
`io.modelcontextprotocol/logLevel` gets the records logged while it runs (a crawl it waits on included), on its own
response stream. Records are only those the server logs at all (LOG_LEVEL, default info); credentials in URLs are
masked and tracebacks left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, get_args

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp_types import (
    LOG_LEVEL_META_KEY,
    EmptyResult,
    LoggingLevel,
    LoggingMessageNotification,
    LoggingMessageNotificationParams,
    SetLevelRequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_web_ingest.ingest.urls import redact_credentials
from mcp_web_ingest.interface.sdk_hooks import connection_of, lowlevel

__all__ = ["LEVELS", "LogBridge", "LogSink", "mcp_level", "register_logging"]

LEVELS: Final[tuple[LoggingLevel, ...]] = get_args(LoggingLevel)  # debug … emergency, ascending (RFC 5424)
QUEUE_SIZE = 1000  # records waiting for one slow client; more are dropped (and counted), never blocking the server
MAX_MESSAGE = 2000  # characters of one record's message
FLUSH_S = 2.0  # how long a request waits for its queued records before its response goes out
ROOT_LOGGER = "mcp_web_ingest"
_STATE_KEY = "mcp_web_ingest.log_sink"

Send = Callable[[LoggingMessageNotificationParams], Awaitable[None]]


def mcp_level(levelno: int) -> LoggingLevel:
    """The MCP level of a Python logging level (Python has no notice, alert or emergency)."""
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info" if levelno >= logging.INFO else "debug"


class LogSink:
    """One destination: its level, a bounded queue, and the task that sends what the queue holds, in order."""

    def __init__(self, level: LoggingLevel, send: Send) -> None:
        self.level = level
        self.dropped = 0
        self.closed = False
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[LoggingMessageNotificationParams] = asyncio.Queue(QUEUE_SIZE)
        self._task = asyncio.create_task(self._run(), name="mcp-log-sink")

    def wants(self, level: LoggingLevel) -> bool:
        """Whether a record at ``level`` is for this sink."""
        return not self.closed and LEVELS.index(level) >= LEVELS.index(self.level)

    def offer(self, params: LoggingMessageNotificationParams) -> None:
        """Queue a record; safe from any thread (records also come from worker threads)."""
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._put(params)
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the client is gone anyway
                self._loop.call_soon_threadsafe(self._put, params)

    def _put(self, params: LoggingMessageNotificationParams) -> None:
        try:
            self._queue.put_nowait(params)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self) -> None:
        while True:
            params = await self._queue.get()
            try:
                await self._send(params)
            except Exception:  # a client that went away; logging it here would feed this very queue
                pass
            finally:
                self._queue.task_done()

    async def close(self, flush_s: float = 0.0) -> None:
        """Stop taking records; send what is queued for up to ``flush_s`` seconds first."""
        self.closed = True
        if flush_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), flush_s)
        self._task.cancel()


# The sink of the request being served on protocol 2026-07-28 (which scopes log delivery to requests).
_REQUEST_SINK: contextvars.ContextVar[LogSink | None] = contextvars.ContextVar("mcp_request_log_sink", default=None)


class LogBridge(logging.Handler):
    """A logging handler that copies this package's records to every session sink (and the current request's)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._sinks: set[LogSink] = set()

    def add(self, sink: LogSink) -> None:
        """Start sending records to a session's sink."""
        with self.lock or contextlib.nullcontext():
            self._sinks.add(sink)

    async def remove(self, sink: LogSink) -> None:
        """Stop sending to a sink (its session closed)."""
        with self.lock or contextlib.nullcontext():
            self._sinks.discard(sink)
        await sink.close()

    def emit(self, record: logging.LogRecord) -> None:
        """Offer the record to each sink that wants its level."""
        level = mcp_level(record.levelno)
        targets = [s for s in self._sinks if s.wants(level)]  # handle() holds self.lock while emit runs
        request = _REQUEST_SINK.get()
        if request is not None and request.wants(level):
            targets.append(request)
        if not targets:
            return
        params = LoggingMessageNotificationParams(level=level, logger=record.name, data=_text(record))
        for sink in targets:
            sink.offer(params)


def _text(record: logging.LogRecord) -> str:
    """The record's message, with its exception's type and message (no traceback), credentials masked."""
    try:
        text = record.getMessage()
    except Exception:  # a bad format string must not break the server's logging
        text = str(record.msg)
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        text += f" ({type(exc).__name__}: {exc})"
    return redact_credentials(text)[:MAX_MESSAGE]


BRIDGE = LogBridge()


def _install() -> None:
    logger = logging.getLogger(ROOT_LOGGER)
    if BRIDGE not in logger.handlers:
        logger.addHandler(BRIDGE)


async def _set_level(ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
    """logging/setLevel: create the session's sink on first use (removed when the session ends), then set it."""
    connection = connection_of(ctx)
    sink: LogSink | None = connection.state.get(_STATE_KEY)
    if sink is None:
        session = ctx.session

        async def send(message: LoggingMessageNotificationParams) -> None:
            await session.send_notification(LoggingMessageNotification(params=message))

        sink = LogSink(params.level, send)
        connection.state[_STATE_KEY] = sink
        BRIDGE.add(sink)
        connection.exit_stack.push_async_callback(BRIDGE.remove, sink)
    sink.level = params.level
    return EmptyResult()


async def _request_scoped(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """On 2026-07-28, send the records logged while a request runs to that request, when it opted in."""
    level = (ctx.meta or {}).get(LOG_LEVEL_META_KEY) if ctx.request_id is not None else None
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS or level not in LEVELS:
        return await call_next(ctx)
    session, request_id = ctx.session, ctx.request_id

    async def send(message: LoggingMessageNotificationParams) -> None:
        await session.send_notification(LoggingMessageNotification(params=message), related_request_id=request_id)

    sink = LogSink(level, send)
    token = _REQUEST_SINK.set(sink)
    try:
        return await call_next(ctx)
    finally:
        _REQUEST_SINK.reset(token)
        await sink.close(FLUSH_S)


def register_logging(mcp: MCPServer) -> None:
    """Declare the logging capability, serve logging/setLevel, and scope 2026-07-28 log delivery to requests."""
    _install()
    # Registered directly: the constructor's on_set_logging_level warns that logging is deprecated from 2026-07-28.
    lowlevel(mcp).add_request_handler("logging/setLevel", SetLevelRequestParams, _set_level)
    mcp.middleware.append(_request_scoped)
