"""HTTP transport protection: bearer-token auth and the DNS-rebinding (Host/Origin) policy for every bind address."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import ConfigError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Paths load balancers and container health checks call without credentials; they reveal no secrets.
OPEN_PATHS = ("/health",)
ANY_HOST = "*"
# The dashboard: a browser cannot send a bearer header when it follows a link, so /ui takes a session cookie made
# from the token at /ui/login. Its style sheet and script hold nothing secret.
UI_PREFIX = "/ui"
UI_OPEN_PATHS = ("/ui/login",)
UI_OPEN_PREFIX = "/ui/static/"
UI_COOKIE = "webingest_ui"
UI_SESSION_S = 12 * 3600


def ui_session_value(token: str, now: float | None = None) -> str:
    """A dashboard session cookie value: its expiry and an HMAC of it keyed by the token (a new token ends it)."""
    expires = int(now if now is not None else time.time()) + UI_SESSION_S
    return f"{expires}.{_ui_mac(token, expires)}"


def ui_session_valid(token: str, value: str | None, now: float | None = None) -> bool:
    """True for an unexpired cookie value made by ui_session_value with this token."""
    expires, _, mac = (value or "").partition(".")
    if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(mac, _ui_mac(token, int(expires)))


def _ui_mac(token: str, expires: int) -> str:
    return hmac.new(token.encode(), f"ui-session|{expires}".encode(), hashlib.sha256).hexdigest()


def is_ui_path(path: str) -> bool:
    """True for the dashboard's paths."""
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


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


def _split_host(value: str) -> tuple[str, int | None] | None:
    """(lower-case host without brackets, port) of a Host header or netloc; None when malformed."""
    try:
        parts = urlsplit("//" + value.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.username is not None or parts.path or parts.query:
        return None
    return host.rstrip("."), port


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class HostPolicy:
    """Which Host and Origin headers a server answers: the defence against DNS rebinding, on every bind address.

    A rebinding attack needs a host *name* that the attacker controls, so names are allow-listed (localhost, the bind
    name, this machine's names when bound beyond loopback, MCP_ALLOWED_HOSTS) while IP literals are accepted: only
    loopback ones on a loopback bind, any on a wider bind (clients there reach the server by its address).
    """

    names: frozenset[str]
    host_ports: frozenset[tuple[str, int]]
    any_ip: bool
    any_host: bool = False
    origins: frozenset[str] = frozenset()

    @classmethod
    def for_bind(cls, settings: Settings, bind_host: str) -> HostPolicy:
        """The policy of a server bound to ``bind_host`` with the configured MCP_ALLOWED_HOSTS/ORIGINS."""
        names = {"localhost"}
        host_ports: set[tuple[str, int]] = set()
        loopback = is_loopback(bind_host)
        bind = bind_host.strip("[]").lower()
        if _ip(bind) is None and bind not in ("", "0.0.0.0", "::"):
            names.add(bind)
        if not loopback:
            # Clients beyond loopback may name this machine as the OS knows it.
            names.update(n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n)
        any_host = False
        for entry in settings.mcp_allowed_hosts:
            entry = entry.strip().lower()
            if entry == ANY_HOST:
                any_host = True
                continue
            if entry.endswith(":*"):
                entry = entry[:-2]
            split = _split_host(entry)
            if split is None:
                raise ConfigError(f"MCP_ALLOWED_HOSTS entry {entry!r} is not a host name, host:port or host:*")
            host, port = split
            if port is None:
                names.add(host)
            else:
                host_ports.add((host, port))
        return cls(
            names=frozenset(names),
            host_ports=frozenset(host_ports),
            any_ip=not loopback,
            any_host=any_host,
            origins=frozenset(o.strip().rstrip("/").lower() for o in settings.mcp_allowed_origins if o.strip()),
        )

    def host_allowed(self, header: str | None) -> bool:
        """True when a request's Host header names this server by an allowed name or address."""
        if not header:
            return False
        split = _split_host(header)
        if split is None:
            return False
        if self.any_host:
            return True
        return self._name_allowed(*split)

    def origin_allowed(self, header: str | None) -> bool:
        """True when there is no Origin (not a browser) or the page's origin is this server's or an allowed one."""
        if header is None:
            return True
        origin = header.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        scheme, sep, netloc = origin.partition("://")
        if not sep or scheme not in ("http", "https"):
            return False  # "null" (sandboxed frames, file://) and other schemes
        split = _split_host(netloc)
        return split is not None and self._name_allowed(*split)

    def _name_allowed(self, host: str, port: int | None) -> bool:
        address = _ip(host)
        if address is not None:
            return self.any_ip or address.is_loopback
        return host in self.names or (port is not None and (host, port) in self.host_ports)


async def _refuse(
    send: Send, status: int, error: str, detail: str, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HostGuardMiddleware:
    """Answers 421 to a foreign Host and 403 to a foreign Origin, on every path (/mcp, /sse, /health, /metrics, ...)."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass requests whose Host and Origin the policy allows."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin")
        if not self.policy.host_allowed(host):
            detail = "this server does not answer that Host name; add it to MCP_ALLOWED_HOSTS if it is yours"
            await _refuse(send, 421, "misdirected request", detail)
            return
        if not self.policy.origin_allowed(None if origin is None else origin.decode("latin-1")):
            await _refuse(send, 403, "forbidden origin", "add the page's origin to MCP_ALLOWED_ORIGINS if you trust it")
            return
        await self.app(scope, receive, send)


class BearerAuthMiddleware:
    """Rejects HTTP requests without `Authorization: Bearer <MCP_AUTH_TOKEN>` (constant-time comparison); the
    dashboard's paths also take its session cookie, and send a browser without one to the login page."""

    def __init__(self, app: ASGIApp, token: str, protect_metrics: bool) -> None:
        self.app = app
        self.token = token
        self.expected = f"Bearer {token}".encode()
        self.open_paths = (
            (*OPEN_PATHS, *UI_OPEN_PATHS) if protect_metrics else (*OPEN_PATHS, *UI_OPEN_PATHS, "/metrics")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass authorised requests (and the open paths) through; answer 401 otherwise."""
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.open_paths or path.startswith(UI_OPEN_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
            await self.app(scope, receive, send)
            return
        if is_ui_path(path):
            cookies = cookie_parser(headers.get(b"cookie", b"").decode("latin-1"))
            if ui_session_valid(self.token, cookies.get(UI_COOKIE)):
                await self.app(scope, receive, send)
                return
            if scope["method"] == "GET" and not path.startswith(UI_PREFIX + "/api/"):
                query = scope.get("query_string", b"").decode("latin-1")
                target = quote(path + (f"?{query}" if query else ""), safe="")
                location = f"{UI_PREFIX}/login?next={target}".encode()
                await send({"type": "http.response.start", "status": 303, "headers": [(b"location", location)]})
                await send({"type": "http.response.body", "body": b""})
                return
        challenge = ((b"www-authenticate", b'Bearer realm="mcp-web-ingest"'),)
        await _refuse(send, 401, "unauthorized", "send Authorization: Bearer <MCP_AUTH_TOKEN>", challenge)


GuardLayer = tuple[type, dict[str, Any]]


def guard_layers(settings: Settings, bind_host: str, *, metrics_only: bool = False) -> list[GuardLayer]:
    """The HTTP guards as (middleware class, options), innermost first: the token (when set), then Host/Origin."""
    layers: list[GuardLayer] = []
    token = settings.mcp_auth_token
    if token is not None and (settings.metrics_require_auth or not metrics_only):
        options = {"token": token.get_secret_value(), "protect_metrics": settings.metrics_require_auth}
        layers.append((BearerAuthMiddleware, options))
    layers.append((HostGuardMiddleware, {"policy": HostPolicy.for_bind(settings, bind_host)}))
    return layers


def guard(app: ASGIApp, settings: Settings, bind_host: str, *, metrics_only: bool = False) -> ASGIApp:
    """Wrap an ASGI app in the guards of guard_layers."""
    for middleware, options in guard_layers(settings, bind_host, metrics_only=metrics_only):
        app = middleware(app, **options)
    return app
