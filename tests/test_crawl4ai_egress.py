"""The Crawl4AI runner's egress proxy: every hop and (in browser mode) every subresource is vetted by the SSRF policy.

Two real servers: a "public" site on 127.0.0.2 (the only address the policy allows) and a "private" service on
127.0.0.1 that records every request it gets. Redirects and subresources of the public site point at the private one
by address (127.0.0.1) and by name (localhost); the private service must never be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import BlockedAddressError
from mcp_web_ingest.ingest.crawl4ai_client import Crawl4AIFetcher
from mcp_web_ingest.ingest.fetch import HttpFetcher

from .test_crawl4ai import CHROMIUM, RunnerProcess, _require_runner_venv

POLICY = {"allow_private_networks": False, "allowed_hosts": ["127.0.0.2"]}


@contextlib.asynccontextmanager
async def _serve(app: web.Application, host: str) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, 0).start()
        yield f"http://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class Sites:
    """The public site (127.0.0.2) and the private service (127.0.0.1) with the paths each was asked for."""

    def __init__(self, public: str, private: str, hits: dict[str, list[str]]) -> None:
        self.public, self.private, self.hits = public, private, hits

    @property
    def private_by_name(self) -> str:
        """The private service through a name that resolves to 127.0.0.1."""
        return self.private.replace("127.0.0.1", "localhost")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sites() -> AsyncIterator[Sites]:
    hits: dict[str, list[str]] = {"public": [], "private": []}

    async def private(request: web.Request) -> web.Response:
        hits["private"].append(request.path_qs)
        return web.Response(
            text="<html><body><h1>Secret</h1><p>internal only</p></body></html>", content_type="text/html"
        )

    async def redirect(request: web.Request) -> web.Response:
        hits["public"].append(request.path_qs)
        return web.Response(status=302, headers={"Location": request.query["location"]})

    async def page(request: web.Request) -> web.Response:
        hits["public"].append(request.path_qs)
        p, n = request.query.get("private", ""), request.query.get("named", "")
        body = (
            "<html><head><title>Public page</title></head><body><h1>Public page</h1><p>Open to all.</p>"
            f'<img src="/own.png"><img src="{p}/pixel.png"><script src="{n}/script.js"></script>'
            f'<script>fetch("{p}/xhr").catch(() => 0); fetch("{n}/xhr-named").catch(() => 0);</script></body></html>'
        )
        return web.Response(text=body, content_type="text/html")

    async def own(request: web.Request) -> web.Response:
        hits["public"].append(request.path_qs)
        return web.Response(body=b"\x89PNG\r\n\x1a\n", content_type="image/png")

    private_app = web.Application()
    private_app.router.add_get("/{tail:.*}", private)
    public_app = web.Application()
    public_app.router.add_get("/redirect-to", redirect)
    public_app.router.add_get("/page.html", page)
    public_app.router.add_get("/own.png", own)
    async with _serve(public_app, "127.0.0.2") as public, _serve(private_app, "127.0.0.1") as private_url:
        yield Sites(public, private_url, hits)


async def _runner(tmp: Path, *, simple: bool) -> RunnerProcess:
    _require_runner_venv()
    runner = RunnerProcess(tmp, simple=simple)
    runner.env.pop("ALLOW_PRIVATE_NETWORKS", None)  # the runner's own default: public addresses only
    runner.env.pop("ALLOWED_HOSTS", None)
    runner.spawn()
    await runner.wait_ready()
    return runner


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http_runner(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunnerProcess]:
    runner = await _runner(tmp_path_factory.mktemp("egress-http"), simple=True)
    yield runner
    runner.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser_runner(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunnerProcess]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser-mode tests need it")
    runner = await _runner(tmp_path_factory.mktemp("egress-browser"), simple=False)
    yield runner
    runner.stop()


async def _post(runner: RunnerProcess, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(runner.url + "/crawl", json=body) as resp:
        return resp.status, await resp.json()


def _hops(sites: Sites) -> list[str]:
    """Redirects from the public site into the private service: by address, by name, over https (a tunnel)."""
    port = sites.private.rsplit(":", 1)[1]
    targets = [f"{sites.private}/secret", f"{sites.private_by_name}/secret", f"https://127.0.0.1:{port}/secret"]
    return [f"{sites.public}/redirect-to?location={t}" for t in targets]


async def _refuses_redirect_hops(runner: RunnerProcess, sites: Sites) -> None:
    status, page = await _post(runner, {"url": f"{sites.public}/page.html", "egress": POLICY})
    assert status == 200 and page["status_code"] == 200 and "Public page" in page["html"]
    for url in _hops(sites):
        status, err = await _post(runner, {"url": url, "timeout_s": 20, "egress": POLICY})
        assert (status, err.get("error_type")) == (403, "target_blocked"), (url, err)
        assert "127.0.0.1, a loopback address" in err["error"]
    # Without a policy in the request the runner's own default (public addresses only) applies.
    status, err = await _post(runner, {"url": f"{sites.public}/page.html"})
    assert (status, err["error_type"]) == (403, "target_blocked") and "127.0.0.2" in err["error"]
    assert sites.hits["private"] == []


async def test_http_runner_refuses_redirect_hops_into_private_space(http_runner: RunnerProcess, sites: Sites) -> None:
    await _refuses_redirect_hops(http_runner, sites)


async def test_browser_runner_refuses_redirect_hops_into_private_space(
    browser_runner: RunnerProcess, sites: Sites
) -> None:
    await _refuses_redirect_hops(browser_runner, sites)


async def test_browser_subresources_go_through_the_guard(browser_runner: RunnerProcess, sites: Sites) -> None:
    """The page loads; its own image is fetched through the proxy, the private ones never leave the browser."""
    query = f"?private={sites.private}&named={sites.private_by_name}"
    status, page = await _post(browser_runner, {"url": f"{sites.public}/page.html{query}", "egress": POLICY})
    assert status == 200 and page["status_code"] == 200 and "Open to all." in page["html"]
    await asyncio.sleep(0.5)  # fetch() calls may still be in flight after the load event
    assert "/own.png" in sites.hits["public"]
    assert sites.hits["private"] == []


@pytest.fixture
async def guarded_client(http_runner: RunnerProcess, settings: Settings) -> AsyncIterator[Callable[[], Any]]:
    guarded = settings.model_copy(update={"allow_private_networks": False, "allowed_hosts": ["127.0.0.2"]})
    fallback = HttpFetcher(guarded)
    outcomes: list[str] = []
    client = Crawl4AIFetcher(guarded.model_copy(update={"crawl4ai_url": http_runner.url}), fallback, outcomes.append)
    yield lambda: (client, outcomes)
    await client.aclose()


async def test_client_passes_its_policy_and_raises_blocked(guarded_client: Callable[[], Any], sites: Sites) -> None:
    """Through the client: the page comes back, a hop into private space raises BlockedAddressError, no fallback."""
    client, outcomes = guarded_client()
    page = await client.fetch(f"{sites.public}/page.html")
    assert "Public page" in page.text
    with pytest.raises(BlockedAddressError, match=r"localhost resolves to 127\.0\.0\.1, a loopback address"):
        await client.fetch(_hops(sites)[1])
    assert outcomes == ["success", "failed"] and client.health()["status"] == "ok"
    assert sites.hits["private"] == []
