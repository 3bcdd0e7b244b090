"""Resource updates: a subscribed client hears `notifications/resources/updated` when a page it follows changes.

The source is the change log (`page_changes`, written in the same transaction as every page write or delete, by any
process), polled every POLL_S seconds while anyone is subscribed: through `resources/subscribe` on protocol
2025-11-25 and earlier, through `subscriptions/listen` on 2026-07-28. A page's URI is notified when the page is added,
changed or removed; a collection summary's when any of its pages is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ListenHandler, ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    UnsubscribeRequestParams,
)

from mcp_web_ingest.errors import WebIngestError
from mcp_web_ingest.ingest.urls import redact_credentials
from mcp_web_ingest.interface.resource_uris import canonical_uri, page_uri, summary_uri
from mcp_web_ingest.interface.sdk_hooks import connection_of, lowlevel
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.storage.interfaces import Directory
from mcp_web_ingest.storage.records import ChangeEvent

__all__ = ["POLL_S", "ChangeWatcher", "register_resource_updates"]

log = logging.getLogger(__name__)

POLL_S = 1.0  # change log polling interval while anyone is subscribed
_STATE_KEY = "mcp_web_ingest.subscriptions"


@dataclass(eq=False)
class _Subscriber:
    """One 2025-era client connection: the URIs it subscribed to and how to tell it one changed."""

    notify: Callable[[str], Awaitable[None]]
    uris: set[str] = field(default_factory=set)


class ChangeWatcher:
    """Polls the change log while anyone listens; tells each subscriber of a resource that it changed."""

    def __init__(self, bus: SubscriptionBus, poll_s: float = POLL_S) -> None:
        self.bus = bus
        self.poll_s = poll_s
        self.listen_streams = 0
        self._subscribers: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()  # two first subscribers at once must not start two pollers

    def _wanted(self) -> bool:
        return self.listen_streams > 0 or any(s.uris for s in self._subscribers)

    async def ensure_running(self, directory: Directory) -> None:
        """Start polling from the log's current end (read before returning, so no later change is missed)."""
        async with self._starting:
            if self._task is None or self._task.done():
                last = await directory.last_change_id()
                self._task = asyncio.create_task(self._run(directory, last), name="resource-change-watcher")

    def add(self, subscriber: _Subscriber) -> None:
        """Watch for a connection's subscriptions."""
        self._subscribers.add(subscriber)

    def discard(self, subscriber: _Subscriber) -> None:
        """Forget a connection (it closed)."""
        self._subscribers.discard(subscriber)

    async def _run(self, directory: Directory, last: int) -> None:
        failing = False
        while self._wanted():
            await asyncio.sleep(self.poll_s)
            try:
                events = await directory.changes_after(last, 1000)
            except WebIngestError as exc:
                if not failing:  # once per outage, not once a second
                    log.warning("resource updates postponed until the database answers: %s", exc)
                failing = True
                continue
            failing = False
            if events:
                last = events[-1].id
                await self.deliver(events)

    async def deliver(self, events: list[ChangeEvent]) -> None:
        """Notify each subscriber of the pages and collection summaries these changes touch, once each."""
        uris = list(
            dict.fromkeys(u for e in events for u in (page_uri(e.collection, e.url), summary_uri(e.collection)))
        )
        for subscriber in list(self._subscribers):
            for uri in uris:
                if uri in subscriber.uris:
                    with contextlib.suppress(Exception):  # the connection went away; its teardown forgets it
                        await subscriber.notify(uri)
        if self.listen_streams:
            for uri in uris:
                await self.bus.publish(ResourceUpdated(uri=uri))


def register_resource_updates(mcp: MCPServer, bus: SubscriptionBus) -> None:
    """Serve resources/subscribe and unsubscribe, and count the listen streams that follow resources.

    bus: the MCPServer's subscription bus (its `subscriptions=`), which `subscriptions/listen` streams read.
    """
    server = lowlevel(mcp)
    watcher = ChangeWatcher(bus)

    async def subscribe(ctx: ServerRequestContext[Runtime, Any], params: SubscribeRequestParams) -> EmptyResult:
        uri = canonical_uri(params.uri)
        if uri is None:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"{params.uri!r} is not a page or collection resource of this server: subscribe to a URI "
                "from resources/list (webingest://COLLECTION/page?url=... or webingest://COLLECTION/pages).",
            )
        connection = connection_of(ctx)
        subscriber: _Subscriber | None = connection.state.get(_STATE_KEY)
        if subscriber is None:
            subscriber = _Subscriber(ctx.session.send_resource_updated)
            connection.state[_STATE_KEY] = subscriber
            watcher.add(subscriber)
            connection.exit_stack.callback(watcher.discard, subscriber)
        subscriber.uris.add(uri)
        try:
            await watcher.ensure_running(ctx.lifespan_context.directory)
        except WebIngestError as exc:
            subscriber.uris.discard(uri)
            raise MCPError(code=INTERNAL_ERROR, message=redact_credentials(str(exc))) from exc
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Runtime, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        subscriber: _Subscriber | None = connection_of(ctx).state.get(_STATE_KEY)
        if subscriber is not None:
            subscriber.uris.discard(canonical_uri(params.uri) or params.uri)
        return EmptyResult()

    listen = ListenHandler(bus)

    async def listen_counted(
        ctx: ServerRequestContext[Runtime, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        if not params.notifications.resource_subscriptions:
            return await listen(ctx, params)
        watcher.listen_streams += 1
        try:
            await watcher.ensure_running(ctx.lifespan_context.directory)
            return await listen(ctx, params)
        finally:
            watcher.listen_streams -= 1

    server.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    server.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, listen_counted)
