"""HTTP transport protection: bearer-token auth and the DNS-rebinding (Host/Origin) policy."""

from __future__ import annotations

import hmac
import ipaddress

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import Settings
from .errors import ConfigError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Paths load balancers and container health checks call without credentials; they reveal no secrets.
OPEN_PATHS = ("/health",)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str, insecure_no_auth: bool) -> None:
    """Refuse to listen beyond loopback without a token, unless the operator explicitly opted out."""
    if is_loopback(host) or settings.mcp_auth_token is not None or insecure_no_auth:
        return
    raise ConfigError(
        f"Refusing to listen on {host} without authentication: anyone who can reach the port could make this server "
        "fetch URLs and read your index. Set MCP_AUTH_TOKEN (clients then send 'Authorization: Bearer <token>'), "
        "bind 127.0.0.1, or pass --insecure-no-auth if something else in front of it authenticates."
    )


def transport_security(settings: Settings, host: str) -> TransportSecuritySettings | None:
    """The SDK's Host/Origin validation: its loopback defaults, or the configured hosts and origins elsewhere."""
    if is_loopback(host):
        return None  # the SDK enables protection with loopback hosts and origins by itself
    if not settings.mcp_allowed_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*settings.mcp_allowed_hosts, "127.0.0.1:*", "localhost:*"],
        allowed_origins=settings.mcp_allowed_origins,
    )


class BearerAuthMiddleware:
    """Rejects HTTP requests without `Authorization: Bearer <MCP_AUTH_TOKEN>` (constant-time comparison)."""

    def __init__(self, app: ASGIApp, token: str, protect_metrics: bool) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.open_paths = OPEN_PATHS if protect_metrics else (*OPEN_PATHS, "/metrics")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass authorised requests (and the open paths) through; answer 401 otherwise."""
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        body = b'{"error":"unauthorized","detail":"send Authorization: Bearer <MCP_AUTH_TOKEN>"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="mcp-web-ingest"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
