"""The guarded egress proxy of one crawl: every connection the crawler opens goes through it, vetted by the SSRF policy.

crawl4ai gets ``http://127.0.0.1:PORT`` as its proxy for one request (``CrawlerRunConfig.proxy_config``): the HTTP
strategy sends each redirect hop through it, and in browser mode Chromium sends every request of the page (each
navigation hop, subresource, fetch/XHR, WebSocket) through it; Playwright adds ``<-loopback>`` to the bypass list, so
loopback targets are proxied too. The proxy resolves each host itself, refuses it unless every address passes
``mcp_web_ingest.ingest.ssrf.AddressPolicy`` (the server's own rules), and dials only an address it vetted, so a name
that re-resolves elsewhere (DNS rebinding) reaches nothing new. Plain ``http://`` requests arrive in absolute form
and are forwarded with ``Connection: close``; everything else (https, ws, wss) arrives as ``CONNECT host:port`` and
is tunnelled. A refusal answers 403 with the reason in ``X-Egress-Blocked`` and is kept in ``blocked``; a target that
cannot be resolved or reached answers 502 with ``X-Egress-Unreachable`` and is kept in ``unreachable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from mcp_web_ingest.errors import BlockedAddressError, FetchError
from mcp_web_ingest.ingest.ssrf import AddressPolicy, resolve

__all__ = ["BLOCKED_HEADER", "UNREACHABLE_HEADER", "EgressProxy"]

log = logging.getLogger("crawl4ai_runner.egress")

BLOCKED_HEADER = "X-Egress-Blocked"
UNREACHABLE_HEADER = "X-Egress-Unreachable"
_MAX_HEAD = 64 * 1024
_HEAD_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10.0
_CHUNK = 64 * 1024
# Hop-by-hop and proxy headers: meant for us, not for the target.
_DROP = frozenset({b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive"})


class _Refused(Exception):
    """A request the proxy answers itself (status, reason) instead of forwarding."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class EgressProxy:
    """A forward proxy on 127.0.0.1 (random port) for one crawl; ``async with`` starts and stops it."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.blocked: list[str] = []  # why each refused connection was refused, in order
        self.unreachable: list[str] = []  # targets that did not resolve or did not answer
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The proxy's address for crawl4ai's ProxyConfig."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> EgressProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=_MAX_HEAD)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the crawler hung up or sent garbage: nothing to answer
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT_S)
        request_line, _, rest = head.partition(b"\r\n")
        try:
            method, target, version = request_line.decode("latin-1").split(" ")
            if method.upper() == "CONNECT":
                host, port = _authority(target)
                url, forward = f"https://{target}/", b""
            else:
                host, port, forward = _absolute_form(method, target, version, rest)
                url = target
            upstream = await self._dial(host, port, url)
        except _Refused as exc:
            await _answer(writer, exc.status, str(exc))
            return
        except ValueError:
            await _answer(writer, 400, "malformed proxy request")
            return
        up_reader, up_writer = upstream
        try:
            if not forward:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            # One request per connection: the answer ends when the target closes (it was sent Connection: close).
            up_writer.write(forward)
            body = asyncio.create_task(_pipe(reader, up_writer))
            try:
                await _pipe(up_reader, writer)
            finally:
                body.cancel()
        finally:
            up_writer.close()

    async def _dial(self, host: str, port: int, url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Vet host (each address it resolves to) and connect to a vetted address; _Refused otherwise."""
        try:
            addresses = await self.policy.check(url)
            if not addresses:  # guard off, or a host named in ALLOWED_HOSTS: resolve without vetting
                addresses = await resolve(host, port)
        except BlockedAddressError as exc:
            self.blocked.append(str(exc))
            log.info("egress refused: %s", exc)
            raise _Refused(403, str(exc)) from exc
        except FetchError as exc:
            self.unreachable.append(str(exc))
            raise _Refused(502, str(exc)) from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return await asyncio.wait_for(asyncio.open_connection(address, port), _CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                last = exc
        reason = f"Connection to {host}:{port} failed: {last or 'no address'}"
        self.unreachable.append(reason)
        raise _Refused(502, reason)


def _authority(target: str) -> tuple[str, int]:
    """(host, port) of a CONNECT target ("example.com:443", "[::1]:443")."""
    parts = urlsplit("//" + target)
    if not parts.hostname or parts.port is None:
        raise ValueError(target)
    return parts.hostname, parts.port


def _absolute_form(method: str, target: str, version: str, rest: bytes) -> tuple[str, int, bytes]:
    """(host, port, the request rewritten to origin form with ``Connection: close``) of a plain-HTTP proxy request."""
    parts = urlsplit(target)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise _Refused(400, f"only absolute http:// URLs or CONNECT can be proxied, not {target[:200]!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = [line for line in rest.split(b"\r\n") if line and line.split(b":", 1)[0].strip().lower() not in _DROP]
    head = f"{method} {path} {version}\r\n".encode("latin-1") + b"".join(h + b"\r\n" for h in headers)
    return parts.hostname, parts.port or 80, head + b"Connection: close\r\n\r\n"


_ANSWERS = {403: ("Forbidden", BLOCKED_HEADER), 502: ("Bad Gateway", UNREACHABLE_HEADER), 400: ("Bad Request", None)}


async def _answer(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    """The proxy's own answer; its marker header lets the runner tell it from the target's (Chromium shows it)."""
    phrase, marker = _ANSWERS[status]
    body = reason.encode("utf-8", errors="replace")
    lines = [f"HTTP/1.1 {status} {phrase}", "Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}"]
    if marker:
        lines.append(f"{marker}: " + " ".join(reason.split()).encode("ascii", errors="replace").decode()[:1000])
    writer.write(("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode() + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close (a tunnel's other direction may still be talking)."""
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()
