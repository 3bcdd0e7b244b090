"""Auth profiles for private pages: the TOML file, cookies and HTTP Basic end to end, and where secrets never go."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_web_ingest.errors import BlockedAddressError, ConfigError
from mcp_web_ingest.ingest.auth_profiles import RequestAuth, load_auth_profiles
from mcp_web_ingest.ingest.fetch import HttpFetcher
from mcp_web_ingest.interface.server import create_server
from mcp_web_ingest.runtime import Runtime, RuntimeHolder

from .formats_site import BASIC, SESSION_COOKIE

PROFILES = f"""
[profiles.wiki-cookie]
hosts = ["127.0.0.1"]
cookies = {{ {SESSION_COOKIE[0]} = "${{TEST_WIKI_SESSION}}" }}
headers = {{ X-Wiki-Client = "mcp-web-ingest" }}

[profiles.wiki-basic]
hosts = ["127.0.0.1"]
basic = {{ username = "{BASIC[0]}", password = "{BASIC[1]}" }}

[profiles.elsewhere]
hosts = ["*.corp.example"]
headers = {{ Authorization = "Bearer not-for-this-host" }}
"""
SECRETS = (SESSION_COOKIE[1], BASIC[1], "not-for-this-host")


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, RequestAuth]:
    monkeypatch.setenv("TEST_WIKI_SESSION", SESSION_COOKIE[1])
    path = tmp_path / "auth.toml"
    path.write_text(PROFILES, encoding="utf-8")
    return load_auth_profiles(path)


@contextlib.contextmanager
def with_profiles(runtime: Runtime, profiles: dict[str, RequestAuth]) -> Iterator[None]:
    runtime.crawler.auth_profiles = profiles
    try:
        yield
    finally:
        runtime.crawler.auth_profiles = {}


@contextlib.asynccontextmanager
async def connect(runtime: Runtime) -> AsyncIterator[Client]:
    server = create_server(runtime.settings, RuntimeHolder(runtime.settings, runtime))
    async with Client(server, mode="auto") as c:
        yield c


async def call(client: Client, tool: str, **args: Any) -> Any:
    return await client.call_tool(tool, args)


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content) + str(result.structured_content)


# --- the file ---------------------------------------------------------------------------------------------------------


def test_profiles_load_with_environment_values(profiles: dict[str, RequestAuth]) -> None:
    cookie = profiles["wiki-cookie"]
    assert cookie.headers_for("http://127.0.0.1:8000/x") == {
        "X-Wiki-Client": "mcp-web-ingest",
        "Cookie": f"{SESSION_COOKIE[0]}={SESSION_COOKIE[1]}",
    }
    assert cookie.headers_for("http://localhost:8000/x") == {}  # another host gets nothing
    assert profiles["elsewhere"].applies_to("https://wiki.corp.example/") and not profiles["elsewhere"].applies_to(
        "https://corp.example.evil.test/"
    )
    shown = repr(profiles) + str(profiles)
    assert not any(secret in shown for secret in SECRETS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[profiles.a]\nhosts = ["h"]\nheaders = { X = "${NOT_SET_ANYWHERE_42}" }', "NOT_SET_ANYWHERE_42"),
        ('[profiles.a]\nheaders = { X = "v" }', "needs hosts"),
        ('[profiles.a]\nhosts = ["h"]\nheaders = { Host = "evil" }', "describes the request itself"),
        ('[profiles.a]\nhosts = ["h"]\npassword = "hunter2-secret"', "unknown keys"),
        ('[profiles.a]\nhosts = ["h"]', "sends nothing"),
        ('[profiles.a]\nhosts = ["*"]\nheaders = { X = "v" }', "invalid hosts"),
        ('[profiles.a\nhosts = ["h"]', "not valid TOML"),
        ("[other]\nx = 1", "[profiles.NAME]"),
        ('[profiles.a]\nhosts = ["h"]\nheaders = { X = "a\\nb" }', "line break"),
    ],
)
def test_bad_profile_files_are_refused_without_showing_values(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_auth_profiles(path)
    assert message in str(info.value) and "hunter2-secret" not in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_auth_profiles(tmp_path / "nope.toml")


# --- end to end -------------------------------------------------------------------------------------------------------


@pytest.mark.both_backends
async def test_cookie_and_basic_profiles_index_private_pages(
    clean: Runtime, site_url: str, profiles: dict[str, RequestAuth], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cookie_url, basic_url = f"{site_url}/formats/private/cookie.md", f"{site_url}/formats/private/basic.md"
    with with_profiles(clean, profiles):
        async with connect(clean) as client:
            refused = await call(client, "index_web_page", url=cookie_url)
            cookie = await call(client, "index_web_page", url=cookie_url, auth_profile="wiki-cookie")
            basic = await call(client, "index_web_page", url=basic_url, auth_profile="wiki-basic")
            found = await call(client, "search", query="grommet budget for the basic team")
            crawl = await call(
                client, "index_web_page", url=cookie_url, auth_profile="wiki-cookie", max_pages=2, force=True
            )
    assert refused.is_error and "401" in text_of(refused)
    assert not cookie.is_error and not basic.is_error, (text_of(cookie), text_of(basic))
    assert found.structured_content["results"][0]["url"] == basic_url
    assert not crawl.is_error and crawl.structured_content["job"]["counts"]["indexed"] >= 1, text_of(crawl)
    # Secrets reach no tool result, no log line, no metric and no database row (the crawl job keeps the name only).
    outputs = [text_of(r) for r in (cookie, basic, found, crawl)]
    metrics = clean.metrics.render().decode()
    async with clean.db.pool.connection() as conn:
        query = (
            "SELECT p::text FROM pages p UNION ALL SELECT j::text FROM crawl_jobs j UNION ALL SELECT text FROM chunks"
        )
        rows = await (await conn.execute(query)).fetchall()
    dumped = "\n".join([*outputs, caplog.text, metrics, *(r[0] for r in rows)])
    assert not any(secret in dumped for secret in SECRETS)
    assert "wiki-cookie" in "\n".join(r[0] for r in rows)  # the job's params name the profile


@pytest.mark.both_backends
async def test_profile_mistakes_are_clear(clean: Runtime, site_url: str, profiles: dict[str, RequestAuth]) -> None:
    url = f"{site_url}/formats/private/cookie.md"
    with with_profiles(clean, profiles):
        async with connect(clean) as client:
            unknown = await call(client, "index_web_page", url=url, auth_profile="nope")
            other_host = await call(client, "index_web_page", url=url, auth_profile="elsewhere")
    assert unknown.is_error and "configured profiles: elsewhere, wiki-basic, wiki-cookie" in text_of(unknown)
    assert other_host.is_error and "is for *.corp.example, not for" in text_of(other_host)


async def test_secrets_are_dropped_on_a_redirect_to_another_host(
    settings: Any, site_url: str, profiles: dict[str, RequestAuth]
) -> None:
    both = RequestAuth(
        name="both",
        hosts=("127.0.0.1",),
        headers=profiles["wiki-cookie"].headers,
        cookies=profiles["wiki-cookie"].cookies,
    )
    async with HttpFetcher(settings) as fetcher:
        echoed = await fetcher.fetch(f"{site_url}/echo-headers", auth=both)
        moved = await fetcher.fetch(f"{site_url}/formats/private/elsewhere", auth=both)
    assert SESSION_COOKIE[1] in echoed.text  # sent to the host the profile is for
    assert moved.final_url.startswith("http://localhost:") and "echo-headers" in moved.final_url
    assert SESSION_COOKIE[1] not in moved.text and "X-Wiki-Client" not in moved.text


async def test_the_ssrf_guard_still_applies(settings: Any, site_url: str, profiles: dict[str, RequestAuth]) -> None:
    strict = settings.model_copy(update={"allow_private_networks": False, "allowed_hosts": []})
    async with HttpFetcher(strict) as fetcher:
        with pytest.raises(BlockedAddressError):
            await fetcher.fetch(f"{site_url}/formats/private/cookie.md", auth=profiles["wiki-cookie"])
