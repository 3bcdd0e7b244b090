"""Fault injection for reliability tests: make a running service slow on demand. Off unless explicitly enabled.

Two kinds of slowness, applied to every route except /health and /_fault unless `paths` names the routes:

- ``delay_s``: wait this long before handling the request (a service that answers late, or never within a
  client's timeout);
- ``drip_s``: send the status line and headers at once, then the body in small pieces spread over this many
  seconds (a service that "drips" its answer, so a client's connect and first-byte timeouts do not fire).

``--fault-delay-s`` / ``--fault-drip-s`` (env ``FAULT_DELAY_S`` / ``FAULT_DRIP_S``) set them at start-up;
``--enable-fault-control`` (env ``ENABLE_FAULT_CONTROL=true``) adds ``GET /_fault`` (current settings and
requests seen per path) and ``POST /_fault`` ``{"delay_s"?, "drip_s"?, "paths"?, "reset_counts"?}`` (replace the
settings; ``{}`` makes the service fast again), so a test can slow the SAME process down and speed it up again.
Never enable it in production: anyone who can reach the port could stall the service.

Shared by tools/model_runner and tools/crawl4ai_runner (both Docker images copy it; it needs only aiohttp).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

CONTROL_PATH = "/_fault"
EXEMPT_PATHS = frozenset({"/health", CONTROL_PATH})  # slowed only when `paths` names them
DRIP_PIECES = 20  # a dripped body goes out in at most this many writes


@dataclass
class Faults:
    """The injected slowness of one app, and how many requests each path received (slowed or not)."""

    delay_s: float = 0.0
    drip_s: float = 0.0
    paths: frozenset[str] | None = None  # None: every path except EXEMPT_PATHS
    control: bool = False  # whether GET/POST /_fault are served
    requests: Counter[str] = field(default_factory=Counter)
    # Set on shutdown: requests still being delayed or dripped finish at once instead of holding the shutdown.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def applies(self, path: str) -> bool:
        """Whether a request to path is slowed."""
        return path in self.paths if self.paths is not None else path not in EXEMPT_PATHS

    def describe(self) -> dict[str, Any]:
        """The settings and counters, as GET /_fault answers them."""
        return {
            "delay_s": self.delay_s,
            "drip_s": self.drip_s,
            "paths": sorted(self.paths) if self.paths is not None else None,
            "requests": dict(self.requests),
        }

    def update(self, body: Any) -> None:
        """Replace the settings from a POST /_fault body; ValueError names a bad field (nothing changes then)."""
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        unknown = set(body) - {"delay_s", "drip_s", "paths", "reset_counts"}
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        values: dict[str, float] = {}
        for name in ("delay_s", "drip_s"):
            value = body.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
                raise ValueError(f"`{name}` must be a number of seconds in [0, 3600]")
            values[name] = float(value)
        paths = body.get("paths")
        if paths is not None and not (isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
            raise ValueError("`paths` must be a list of paths (strings) or null")
        self.delay_s, self.drip_s = values["delay_s"], values["drip_s"]
        self.paths = frozenset(paths) if paths is not None else None
        if body.get("reset_counts"):
            self.requests.clear()

    async def pause(self, seconds: float) -> None:
        """Sleep, unless the service is shutting down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)


FAULTS: web.AppKey[Faults] = web.AppKey("faults", Faults)


async def _drip(request: web.Request, response: web.Response, faults: Faults) -> web.StreamResponse:
    """Send response's headers now and its body in pieces over faults.drip_s seconds."""
    body = response.body if isinstance(response.body, bytes) else b""
    stream = web.StreamResponse(status=response.status, reason=response.reason, headers=response.headers)
    stream.content_length = len(body)
    size = max(1, -(-len(body) // DRIP_PIECES))  # ceiling division
    starts = range(0, len(body), size) if body else range(1)
    try:
        await stream.prepare(request)
        for start in starts:  # a pause before each piece: the whole body takes drip_s
            await faults.pause(faults.drip_s / len(starts))
            await stream.write(body[start : start + size])
        await stream.write_eof()
    except ConnectionError:
        pass  # the client gave up waiting: that is the point of dripping
    return stream


@web.middleware
async def inject_faults(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count the request, then delay it and/or drip its answer as configured."""
    faults = request.app[FAULTS]
    faults.requests[request.path] += 1
    if not faults.applies(request.path):
        return await handler(request)
    delay_s, drip_s = faults.delay_s, faults.drip_s  # a request keeps the settings it arrived under
    if delay_s > 0:
        await request.read()  # the request arrived whole; the answer is what is late (the body stays cached)
        await faults.pause(delay_s)
        if request.transport is None or request.transport.is_closing():
            # The client gave up waiting: skip the work, as a server that notices the disconnect would.
            return web.Response(status=499, text="client closed the connection")
    response = await handler(request)
    if drip_s > 0 and isinstance(response, web.Response) and not response.prepared:
        return await _drip(request, response, faults)
    return response


async def get_fault(request: web.Request) -> web.Response:
    """GET /_fault: the injected slowness and the requests seen per path."""
    return web.json_response(request.app[FAULTS].describe())


async def post_fault(request: web.Request) -> web.Response:
    """POST /_fault: replace the injected slowness; answers the new state, or 400 naming the bad field."""
    faults = request.app[FAULTS]
    try:
        faults.update(await request.json())
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        return web.json_response({"error": f"bad /_fault body: {exc}", "error_type": "validation"}, status=400)
    log.warning("fault injection now: %s", faults.describe())
    return web.json_response(faults.describe())


async def _release(app: web.Application) -> None:
    app[FAULTS].stopping.set()


def install(app: web.Application, faults: Faults | None) -> None:
    """Add the fault middleware (and the /_fault routes when faults.control) to app; None leaves app untouched.

    Call before the app starts (middlewares are frozen then); the middleware goes first, around every other one.
    """
    if faults is None:
        return
    app[FAULTS] = faults
    app.middlewares.insert(0, inject_faults)
    app.on_shutdown.append(_release)
    if faults.control:
        app.router.add_get(CONTROL_PATH, get_fault)
        app.router.add_post(CONTROL_PATH, post_fault)
    log.warning("fault injection is enabled (%s): never use this in production", faults.describe())


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--enable-fault-control, --fault-delay-s, --fault-drip-s (defaults from the environment; off by default)."""
    group = parser.add_argument_group("fault injection (tests only; never in production)")
    group.add_argument(
        "--enable-fault-control",
        action="store_true",
        default=_env_bool("ENABLE_FAULT_CONTROL"),
        help="serve GET/POST /_fault to change the injected slowness at run time (env ENABLE_FAULT_CONTROL)",
    )
    group.add_argument(
        "--fault-delay-s",
        type=float,
        default=float(os.environ.get("FAULT_DELAY_S") or 0),
        help="delay every request (but /health) this many seconds (env FAULT_DELAY_S)",
    )
    group.add_argument(
        "--fault-drip-s",
        type=float,
        default=float(os.environ.get("FAULT_DRIP_S") or 0),
        help="drip every answer's body (but /health) over this many seconds (env FAULT_DRIP_S)",
    )


def from_arguments(args: argparse.Namespace) -> Faults | None:
    """The Faults the parsed arguments ask for, or None when fault injection is off (the default)."""
    if not (args.enable_fault_control or args.fault_delay_s or args.fault_drip_s):
        return None  # (a negative value goes on, to be refused by update)
    faults = Faults(control=args.enable_fault_control)
    faults.update({"delay_s": args.fault_delay_s, "drip_s": args.fault_drip_s})
    return faults
