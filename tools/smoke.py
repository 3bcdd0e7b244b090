"""Smoke test of a running server over MCP HTTP: health, index a page, find it, metrics moved.

    python tools/smoke.py [--url http://127.0.0.1:3000] [--token TOKEN] [--page URL --query Q]

Without --page it serves a small page of its own on 127.0.0.1, so the server must run on this machine and be
allowed to fetch loopback addresses (ALLOW_PRIVATE_NETWORKS=true or ALLOWED_HOSTS=127.0.0.1: the SSRF guard refuses
them by default). Otherwise (a server in Docker, a remote server) give --page and --query: a public page the server
can reach and a search that should find it first. The page goes into the collection `smoke-test`, which is
deleted again at the end. Prints one PASS/FAIL line per step; exit status 0 when every step passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

COLLECTION = "smoke-test"
_INDEXED = re.compile(r"^web_pages_indexed_total\{[^}]*\}\s+([0-9.eE+-]+)\s*$", re.MULTILINE)


class StepFailed(Exception):
    """A step's check did not hold; the message says what was seen."""


class Smoke:
    """Runs the steps in order; a failed step marks the run failed, and later steps that need it are skipped."""

    def __init__(self, base: str, token: str | None, timeout: float) -> None:
        self.base = base.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self.failed = False

    async def step(self, name: str, fn: Callable[[], Awaitable[str]]) -> bool:
        started = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: the step runs in this task, so the MCP session it opens (anyio cancel
            # scopes) is closed in the task that opened it.
            async with asyncio.timeout(self.timeout):
                detail = await fn()
        except StepFailed as exc:
            ok, detail = False, str(exc)
        except TimeoutError:
            ok, detail = False, f"no answer within {self.timeout:.0f} s"
        except aiohttp.ClientConnectorError as exc:
            ok, detail = False, f"cannot connect to {self.base} ({exc.os_error or exc}); is the server running?"
        except Exception as exc:
            ok, detail = False, f"{type(exc).__name__}: {_first_line(exc)}"
        else:
            ok = True
        took = (time.perf_counter() - started) * 1000
        print(f"{'PASS' if ok else 'FAIL'}  {name:<14} {detail} ({took:.0f} ms)", flush=True)
        self.failed |= not ok
        return ok

    def skip(self, name: str, why: str) -> None:
        print(f"SKIP  {name:<14} {why}", flush=True)


def _first_line(exc: BaseException) -> str:
    """The most useful one-line message of an exception (the first leaf of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def indexed_total(metrics_text: str) -> float:
    """Sum of web_pages_indexed_total over its outcomes."""
    return sum(float(v) for v in _INDEXED.findall(metrics_text))


@contextlib.asynccontextmanager
async def local_page(word: str) -> AsyncIterator[str]:
    """Serve one small documentation-like page about `word` on 127.0.0.1; yields its URL."""
    from aiohttp import web

    html = f"""<!doctype html><html lang="en"><head><title>Smoke test {word}</title></head><body>
<main><h1>Smoke test {word}</h1>
<p>This page exists to check that indexing and search work end to end. The marker word is {word}.</p>
<h2>Configuring the {word} widget</h2>
<p>Set the {word} option to enable the widget, then restart the service so that {word} takes effect.</p>
<pre><code class="language-python">widget.configure({word}=True)</code></pre>
</main></body></html>"""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/smoke.html", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/smoke.html"
    finally:
        await runner.cleanup()


async def run(args: argparse.Namespace) -> int:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    smoke = Smoke(args.url, args.token, args.timeout)
    word = f"smoke{secrets.token_hex(4)}"
    state: dict[str, Any] = {}
    print(f"smoke test of {smoke.base} (collection {COLLECTION!r}, marker {word})", flush=True)

    async with aiohttp.ClientSession(headers=smoke.headers, timeout=aiohttp.ClientTimeout(total=args.timeout)) as http:

        async def get_text(path: str) -> tuple[int, str]:
            async with http.get(smoke.base + path) as r:
                return r.status, await r.text()

        async def health_http() -> str:
            status, body = await get_text("/health")
            try:
                report = json.loads(body)
            except ValueError as exc:
                raise StepFailed(f"GET /health answered {status} with non-JSON: {body[:200]!r}") from exc
            if status != 200 or report.get("status") not in ("ok", "degraded"):
                raise StepFailed(f"GET /health answered {status}, status {report.get('status')!r}: {body[:300]}")
            return f"GET /health {status} status={report['status']} pipeline={report.get('pipeline')}"

        async def metrics_before() -> str:
            status, text = await get_text("/metrics")
            if status != 200 or "web_pages_indexed" not in text:
                raise StepFailed(f"GET /metrics answered {status} without web_pages_indexed_total")
            state["indexed_before"] = indexed_total(text)
            return f"GET /metrics 200, web_pages_indexed_total={state['indexed_before']:g}"

        if not await smoke.step("health-http", health_http):
            for name in ("metrics", "mcp-connect", "health-tool", "index", "search", "metrics-moved", "cleanup"):
                smoke.skip(name, "server not healthy")
            return 1
        await smoke.step("metrics", metrics_before)

        async with contextlib.AsyncExitStack() as stack:
            page_url = args.page or await stack.enter_async_context(local_page(word))
            client_http = await stack.enter_async_context(create_mcp_http_client(headers=smoke.headers))
            client: Any = None

            async def connect() -> str:
                nonlocal client
                client = await stack.enter_async_context(
                    Client(streamable_http_client(smoke.base + "/mcp", http_client=client_http))
                )
                tools = {t.name for t in (await client.list_tools()).tools}
                missing = {"index_web_page", "search", "health"} - tools
                if missing:
                    raise StepFailed(f"tools missing: {sorted(missing)}")
                return f"{smoke.base}/mcp, {len(tools)} tools"

            async def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
                res = await client.call_tool(name, arguments)
                if res.is_error:
                    text = " ".join(getattr(c, "text", "") for c in res.content)
                    hint = ""
                    if name == "index_web_page" and not args.page and "ALLOW_PRIVATE_NETWORKS" in text:
                        hint = " (the server may not fetch 127.0.0.1: use --page URL --query Q)"
                    raise StepFailed(f"{name} returned an error: {text[:300]}{hint}")
                return res.structured_content or {}

            async def health_tool() -> str:
                report = await call("health", {})
                if report.get("status") not in ("ok", "degraded"):
                    raise StepFailed(f"health tool says {report.get('status')!r}: {json.dumps(report)[:300]}")
                counts = report.get("counts", {})
                return f"status={report['status']} pages={counts.get('pages')} chunks={counts.get('chunks')}"

            async def index() -> str:
                out = await call("index_web_page", {"url": page_url, "collection": COLLECTION, "force": True})
                page = out.get("page") or {}
                state["indexed_url"] = page.get("url")
                if not page.get("chunks"):
                    raise StepFailed(f"indexed no chunks: {json.dumps(out)[:300]}")
                return f"{page['url']} chunks={page['chunks']}"

            async def search() -> str:
                query = args.query or f"how do I configure the {word} widget"
                out = await call("search", {"query": query, "collection": COLLECTION, "k": 3})
                results = out.get("results") or []
                if not results:
                    raise StepFailed(f"no results for {query!r}")
                first = results[0]["url"]
                if first != state.get("indexed_url"):
                    raise StepFailed(f"first result is {first}, expected {state.get('indexed_url')}")
                return f"first result {results[0].get('deep_link') or first}"

            async def metrics_moved() -> str:
                status, text = await get_text("/metrics")
                after = indexed_total(text)
                if status != 200 or after <= state.get("indexed_before", float("inf")):
                    raise StepFailed(
                        f"web_pages_indexed_total did not increase ({state.get('indexed_before')} → {after})"
                    )
                return f"web_pages_indexed_total {state['indexed_before']:g} → {after:g}"

            async def cleanup() -> str:
                out = await call("delete_source", {"collection": COLLECTION})
                return f"deleted {out.get('pages_deleted')} page(s) of collection {COLLECTION!r}"

            if not await smoke.step("mcp-connect", connect):
                for name in ("health-tool", "index", "search", "metrics-moved", "cleanup"):
                    smoke.skip(name, "no MCP session")
                return 1
            await smoke.step("health-tool", health_tool)
            if await smoke.step("index", index):
                await smoke.step("search", search)
                await smoke.step("metrics-moved", metrics_moved)
            else:
                smoke.skip("search", "nothing indexed")
                smoke.skip("metrics-moved", "nothing indexed")
            await smoke.step("cleanup", cleanup)
    return 1 if smoke.failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:3000", help="server base URL (default http://127.0.0.1:3000)")
    p.add_argument("--token", help="bearer token (MCP_AUTH_TOKEN of the server)")
    p.add_argument("--page", help="page to index instead of the built-in local one (must be reachable by the server)")
    p.add_argument("--query", help="search query for --page (default: one about the built-in page)")
    p.add_argument("--timeout", type=float, default=120, help="seconds each step may take (default 120)")
    args = p.parse_args(argv)
    if args.page and not args.query:
        p.error("--page needs --query: a search that should find that page first")
    args.url = args.url.removesuffix("/mcp")
    try:
        code = asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    print("smoke test " + ("PASSED" if code == 0 else "FAILED"), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
