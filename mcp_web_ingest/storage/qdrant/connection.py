"""Qdrant clients: one per store for a server, one per location and process for a local (embedded) store."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import VectorStoreError

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient

_local_clients: dict[str, tuple[AsyncQdrantClient, int]] = {}  # local mode: one client per location per process


def redact_location(location: str) -> str:
    """A Qdrant URL without its user information (credentials), for health reports, logs and errors."""
    return location.split("@", 1)[-1] if "://" in location else location


def open_client(settings: Settings, location: str, *, local: bool) -> AsyncQdrantClient:
    """A server client, or the shared local client of this location (counting its users)."""
    from qdrant_client import AsyncQdrantClient

    if not local:
        secret = settings.qdrant_api_key
        key = (secret.get_secret_value() if secret is not None else "") or None  # "" from compose: no key
        return AsyncQdrantClient(
            url=location,
            api_key=key,
            timeout=math.ceil(settings.qdrant_timeout_s),
            prefer_grpc=settings.qdrant_prefer_grpc,
        )
    client, users = _local_clients.get(location, (None, 0))
    if client is None:
        try:
            client = (
                AsyncQdrantClient(location=":memory:") if location == ":memory:" else AsyncQdrantClient(path=location)
            )
        except (RuntimeError, OSError) as exc:  # the directory is locked by another process, or unwritable
            raise VectorStoreError(f"Cannot open the local Qdrant store at {location}: {exc}") from exc
    _local_clients[location] = (client, users + 1)
    return client


async def close_client(client: AsyncQdrantClient, location: str, *, local: bool) -> None:
    """Close a client; a shared local one only when its last user leaves."""
    if local:
        shared, users = _local_clients.get(location, (None, 0))
        if shared is client and users > 1:
            _local_clients[location] = (client, users - 1)
            return
        _local_clients.pop(location, None)
    with contextlib.suppress(Exception):
        await client.close()
