"""The SSRF guard: the address policy, the guarded resolver, and HttpFetcher/Crawl4AIFetcher/guarded_session using them.

Nothing here sends a packet beyond loopback: blocked targets are refused before any connection is made, public
addresses are only checked (IP literals, no DNS), and the only name resolved is `localhost` from /etc/hosts.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from mcp_web_ingest.config import Settings, load_settings
from mcp_web_ingest.errors import BlockedAddressError, FetchError
from mcp_web_ingest.ingest.crawl4ai_client import Crawl4AIFetcher
from mcp_web_ingest.ingest.fetch import HttpFetcher
from mcp_web_ingest.ingest.ssrf import AddressPolicy, GuardedResolver, guarded_session

from .site import serve_site

HINT = "set ALLOW_PRIVATE_NETWORKS=true or add the host to ALLOWED_HOSTS to index local services"

BLOCKED = [
    ("http://127.0.0.1/", "127.0.0.1, a loopback address"),
    ("http://127.1/", "127.1 resolves to 127.0.0.1, a loopback address"),
    ("http://2130706433/", "2130706433 resolves to 127.0.0.1, a loopback"),
    ("http://0x7f.1/", "0x7f.1 resolves to 127.0.0.1, a loopback"),
    ("http://0x7f000001/", "resolves to 127.0.0.1, a loopback"),
    ("http://0177.0.0.1/", "0177.0.0.1 resolves to 127.0.0.1, a loopback"),
    ("http://017700000001/", "resolves to 127.0.0.1, a loopback"),
    ("http://0/", "resolves to 0.0.0.0, an unspecified address"),
    ("http://0.0.0.0:8080/", "0.0.0.0, an unspecified address"),
    ("http://[::1]/", "::1, a loopback address"),
    ("http://[::]/", ":: , an unspecified address".replace(" ,", ",")),
    ("http://10.0.0.5/admin", "10.0.0.5, a private address"),
    ("http://172.16.3.4/", "172.16.3.4, a private address"),
    ("https://192.168.1.1:8443/", "192.168.1.1, a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, the cloud metadata address"),
    ("http://[fd00:ec2::254]/", "the cloud metadata address"),
    ("http://169.254.10.1/", "a link-local address"),
    ("http://100.64.0.1/", "a carrier-grade NAT (shared) address"),
    ("http://224.0.0.251/", "a multicast address"),
    ("http://[ff02::1]/", "a multicast address"),
    ("http://[fc00::1]/", "a unique-local (private) address"),
    ("http://[fd12:3456::1]/", "a unique-local (private) address"),
    ("http://[fe80::1]/", "a link-local address"),
    ("http://[::ffff:127.0.0.1]/", "a loopback address (127.0.0.1 inside IPv6)"),
    ("http://[::ffff:a00:5]/", "a private address (10.0.0.5 inside IPv6)"),
    ("http://[::ffff:169.254.169.254]/", "the cloud metadata address (169.254.169.254 inside IPv6)"),
    ("http://[2002:7f00:1::]/", "a loopback address (127.0.0.1 inside IPv6)"),  # 6to4
    ("http://[64:ff9b::a9fe:a9fe]/", "the cloud metadata address (169.254.169.254 inside IPv6)"),  # NAT64
    ("http://[::127.0.0.1]/", "a loopback address (127.0.0.1 inside IPv6)"),  # IPv4-compatible
    ("http://240.0.0.1/", "240.0.0.1, a"),  # reserved (class E)
    ("http://198.18.0.1/", "198.18.0.1, a"),  # benchmarking range
    ("http://localhost:8080/", "localhost resolves to 127.0.0.1, a loopback address"),  # a name from /etc/hosts
    ("http://LocalHost/", "resolves to 127.0.0.1, a loopback address"),
    ("http://999.1.1.1/", "999.1.1.1 is not a valid IP address"),
]

PUBLIC = [
    "http://93.184.216.34/",
    "https://8.8.8.8/resolve?name=x",
    "http://1.1.1.1:8443/",
    "http://[2606:4700:4700::1111]/",
    "http://[::ffff:93.184.216.34]/",  # IPv4-mapped public
    "http://[2002:5db8:d822::1]/",  # 6to4 of a public address
    "http://[64:ff9b::808:808]/",  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize(("url", "fragment"), BLOCKED)
async def test_policy_blocks_non_public_addresses(url: str, fragment: str) -> None:
    with pytest.raises(BlockedAddressError) as info:
        await AddressPolicy().check(url)
    message = str(info.value)
    assert fragment in message and message.startswith("Refusing to fetch")
    if "not a valid" not in fragment:
        assert message.endswith(HINT)
    assert info.value.url == url


@pytest.mark.parametrize("url", PUBLIC)
async def test_policy_allows_public_addresses_without_connecting(url: str) -> None:
    addresses = await AddressPolicy().check(url)
    assert len(addresses) == 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:70/", "http:///x"])
async def test_policy_refuses_other_schemes(url: str) -> None:
    with pytest.raises(FetchError, match="only http:// and https://"):
        await AddressPolicy().check(url)


async def test_policy_refuses_malformed_url() -> None:
    with pytest.raises(FetchError, match="invalid URL"):
        await AddressPolicy().check("http://[::1/")


@pytest.mark.parametrize(
    ("allowed", "url", "ok"),
    [
        (["10.0.0.0/8"], "http://10.1.2.3/", True),
        (["10.0.0.0/8"], "http://192.168.0.1/", False),
        (["10.0.0.5"], "http://10.0.0.5/", True),
        (["10.0.0.5"], "http://10.0.0.6/", False),
        (["127.0.0.1"], "http://127.0.0.1:3000/", True),
        (["127.0.0.1"], "http://[::1]:3000/", False),
        (["127.0.0.1"], "http://0x7f.1/", True),  # the same address, however spelled
        (["[::1]"], "http://[::1]/", True),
        (["fd00::/8"], "http://[fd00::7]/", True),
        (["localhost"], "http://localhost:9/", True),
        (["LOCALHOST."], "http://localhost/", True),
        (["127.0.0.0/8"], "http://localhost/", True),
        (["intranet.example"], "http://localhost/", False),
    ],
)
async def test_allowed_hosts_by_name_and_cidr(allowed: list[str], url: str, ok: bool) -> None:
    policy = AddressPolicy(allowed_hosts=allowed)
    if ok:
        await policy.check(url)
    else:
        with pytest.raises(BlockedAddressError):
            await policy.check(url)


async def test_guard_off_checks_nothing() -> None:
    policy = AddressPolicy(allow_private_networks=True)
    assert not policy.enabled
    assert await policy.check("http://169.254.169.254/") == []


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", "Wiki.Internal, 10.0.0.0/8 ,")
    s = load_settings(_env_file=None)
    assert s.allow_private_networks is False and s.max_chunks_per_page == 2000
    assert s.allowed_hosts == ["wiki.internal", "10.0.0.0/8"]
    monkeypatch.setenv("ALLOWED_HOSTS", '["a.example", "::1"]')
    monkeypatch.setenv("ALLOW_PRIVATE_NETWORKS", "true")
    s = load_settings(_env_file=None)
    assert s.allowed_hosts == ["a.example", "::1"] and AddressPolicy.from_settings(s).enabled is False
    monkeypatch.setenv("ALLOWED_HOSTS", "10.0.0.0/33")
    with pytest.raises(Exception, match="ALLOWED_HOSTS"):
        load_settings(_env_file=None)


# --- integration: the fetcher, its resolver, redirects ----------------------------------------------------------


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Any]:
    """Factory of HttpFetchers with the guard on; closed at teardown."""
    made: list[HttpFetcher] = []

    def make(**overrides: Any) -> HttpFetcher:
        options = {"data_dir": tmp_path, "fetch_retries": 1, "fetch_timeout_s": 5.0, **overrides}
        made.append(HttpFetcher(Settings(_env_file=None, **options)))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for fetcher in made:
        await fetcher.aclose()


def _port(site_url: str) -> int:
    return int(site_url.rsplit(":", 1)[1])


async def test_fetcher_blocks_the_local_site_by_default(guarded: Any, site_url: str) -> None:
    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1, a loopback address"):
        await guarded().fetch(site_url + "/guide/install.html")


async def test_fetcher_resolver_blocks_localhost_by_default(guarded: Any, site_url: str) -> None:
    """A host name reaches the connector's GuardedResolver, which refuses its loopback answer."""
    with pytest.raises(BlockedAddressError, match=re.escape("localhost resolves to 127.0.0.1")):
        await guarded().fetch(f"http://localhost:{_port(site_url)}/guide/install.html")


@pytest.mark.parametrize("overrides", [{"allow_private_networks": True}, {"allowed_hosts": ["localhost"]}])
async def test_fetcher_allows_localhost_when_configured(guarded: Any, site_url: str, overrides: dict) -> None:
    page = await guarded(**overrides).fetch(f"http://localhost:{_port(site_url)}/guide/install.html")
    assert "Froobnicator" in page.text


@pytest.mark.parametrize(
    "target",
    [
        "http://[::1]:{port}/guide/install.html",
        "http://192.168.0.1:{port}/guide/install.html",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/",
        "http://0x7f.1:{port}/guide/install.html",
    ],
)
async def test_redirect_into_private_space_is_blocked(guarded: Any, site_url: str, target: str) -> None:
    """Only the test site's own address is allowed; a redirect anywhere else private is refused before connecting."""
    fetcher = guarded(allowed_hosts=["127.0.0.1"])
    assert "Froobnicator" in (await fetcher.fetch(site_url + "/guide/install.html")).text
    location = target.format(port=_port(site_url))
    if location.startswith("http://0x7f.1"):  # the same address as the allowed one: allowed, however spelled
        page = await fetcher.fetch(f"{site_url}/redirect-to?location={location}")
        assert page.final_url == location
        return
    with pytest.raises(BlockedAddressError, match=re.escape(HINT)):
        await fetcher.fetch(f"{site_url}/redirect-to?location={location}")


class _ScriptedResolver(AbstractResolver):
    """Answers every name with the next address of a script (a DNS server that rebinds)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        address = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        fam = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [{"hostname": host, "host": address, "port": port, "family": fam, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        """Nothing to release."""


async def test_resolver_connects_to_the_vetted_address_and_catches_rebinding(site_url: str) -> None:
    """The connection goes to exactly the address checked, with the name kept in Host; a rebind is refused."""
    port = _port(site_url)
    scripted = _ScriptedResolver("127.0.0.1", "169.254.169.254")
    policy = AddressPolicy(allowed_hosts=["127.0.0.1"])
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy, scripted), use_dns_cache=False, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"http://docs.rebind.test:{port}/echo-headers") as resp:
            assert resp.status == 200
            assert f"Host: docs.rebind.test:{port}" in await resp.text()
        with pytest.raises(
            BlockedAddressError, match=re.escape("docs.rebind.test resolves to 169.254.169.254, the cloud")
        ):
            await session.get(f"http://docs.rebind.test:{port}/echo-headers")
    assert scripted.calls == 2


async def test_resolver_refuses_when_any_answer_is_private(site_url: str) -> None:
    class Mixed(_ScriptedResolver):
        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
            public = await super().resolve(host, port, family)
            return [*public, {**public[0], "host": "10.0.0.5"}]

    with pytest.raises(BlockedAddressError, match=re.escape("resolves to 10.0.0.5, a private address")):
        await GuardedResolver(AddressPolicy(), Mixed("93.184.216.34")).resolve("mixed.test", 80)


async def test_guarded_session_checks_literals_and_redirects(site_url: str, tmp_path: Path) -> None:
    """What crawl.py's robots/sitemap/llms.txt requests should use."""
    settings = Settings(_env_file=None, data_dir=tmp_path, allowed_hosts=["127.0.0.1"])  # type: ignore[call-arg]
    async with guarded_session(settings, headers={"User-Agent": "t"}) as session:
        async with session.get(site_url + "/robots.txt") as resp:
            assert resp.status == 200
        with pytest.raises(BlockedAddressError, match=r"\[::1\]"):
            await session.get(f"{site_url}/redirect-to?location=http://[::1]:{_port(site_url)}/robots.txt")
    strict = settings.model_copy(update={"allowed_hosts": []})
    async with guarded_session(strict) as session:
        with pytest.raises(BlockedAddressError, match=re.escape("localhost resolves to 127.0.0.1")):
            await session.get(f"http://localhost:{_port(site_url)}/robots.txt")
    open_settings = settings.model_copy(update={"allow_private_networks": True})
    async with guarded_session(open_settings) as session, session.get(f"http://localhost:{_port(site_url)}/") as r:
        assert r.status == 200


async def test_crawl4ai_client_checks_target_and_final_url(site_url: str, settings: Settings) -> None:
    """The runner is never asked for a private target, and a page it reached by redirecting into one is refused."""
    calls: list[str] = []

    async def crawl(request: web.Request) -> web.Response:
        body = await request.json()
        calls.append(body["url"])
        page = "<html><body><h1>Metadata</h1><p>secret</p></body></html>"
        answer = {"html": page, "status_code": 200, "content_type": "text/html", "headers": {}}
        return web.json_response({**answer, "final_url": "http://169.254.169.254/latest/meta-data/"})

    app = web.Application()
    app.router.add_post("/crawl", crawl)
    guarded_settings = settings.model_copy(update={"allow_private_networks": False, "allowed_hosts": ["127.0.0.1"]})
    async with serve_site(app) as runner_url:
        fallback = HttpFetcher(guarded_settings)
        client = Crawl4AIFetcher(guarded_settings.model_copy(update={"crawl4ai_url": runner_url}), fallback)
        try:
            with pytest.raises(BlockedAddressError, match=re.escape("10.0.0.5, a private address")):
                await client.fetch("http://10.0.0.5/")
            assert calls == []
            with pytest.raises(BlockedAddressError, match=re.escape("169.254.169.254, the cloud metadata address")):
                await client.fetch(site_url + "/redirect")
            assert calls == [site_url + "/redirect"] and client.counters["failed"] == 1
        finally:
            await client.aclose()
