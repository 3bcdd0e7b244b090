"""Every tool through the real MCP client: control characters, credentials in URLs and a closed database give
clear tool errors, and nothing secret reaches a result, an error or a log line."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from mcp_web_ingest.interface.cli import RedactingFilter
from mcp_web_ingest.runtime import Runtime

from .test_server import connect

pytestmark = pytest.mark.both_backends

JOB = "00000000-0000-0000-0000-000000000000"
# (tool, arguments that are valid apart from the poisoned one, the poisoned parameter)
STRING_PARAMETERS = [
    ("index_web_page", {"url": "http://127.0.0.1:9/x"}, "url"),
    ("index_web_page", {"url": "http://127.0.0.1:9/x"}, "collection"),
    ("index_web_page", {"url": "http://127.0.0.1:9/x", "max_pages": 5}, "include"),
    ("index_web_page", {"url": "http://127.0.0.1:9/x", "max_pages": 5}, "exclude"),
    ("crawl_status", {"job_id": JOB}, "job_id"),
    ("cancel_crawl", {"job_id": JOB}, "job_id"),
    ("delete_source", {}, "collection"),
    ("delete_source", {}, "domain"),
    ("delete_source", {}, "url_prefix"),
    ("refresh_source", {"wait_seconds": 0}, "collection"),
    ("refresh_source", {"wait_seconds": 0}, "url_prefix"),
    ("search", {"query": "install"}, "query"),
    ("search", {"query": "install"}, "collection"),
    ("search", {"query": "install"}, "url_prefix"),
    ("search", {"query": "install"}, "symbol"),
]


IDS = [f"{tool}-{param}" for tool, _, param in STRING_PARAMETERS]


def _text(result: object) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["a\x00b", "a\x1bb", "a\x7fb"], ids=["nul", "escape", "delete"])
@pytest.mark.parametrize(("tool", "args", "param"), STRING_PARAMETERS, ids=IDS)
async def test_control_characters_are_input_errors_on_every_tool(
    clean: Runtime, tool: str, args: dict, param: str, bad: str
) -> None:
    before = await clean.store.catalog.counts()
    value: object = [bad] if param in ("include", "exclude") else bad
    async with connect(clean, "legacy") as client:
        result = await client.call_tool(tool, {**args, param: value})
    assert result.is_error
    text = _text(result)
    assert f"Parameter '{param}'" in text and "control character" in text, text
    assert await clean.store.catalog.counts() == before


async def test_every_tool_answers_a_closed_database_with_a_clear_message(
    backend_runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A data directory made like the session's (mktemp): embedded PostgreSQL adjusts its parents' permissions.
    settings = backend_runtime.settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("closed")})
    async with Runtime.open(settings, resume_jobs=False) as rt:
        await rt.db.aclose()  # the database goes away under a running server
        async with connect(rt, "legacy") as client:
            calls = [
                ("list_sources", {}),
                ("delete_source", {"collection": "docs"}),
                ("crawl_status", {"job_id": JOB}),
                ("refresh_source", {"wait_seconds": 0}),
            ]
            for tool, args in calls:
                result = await client.call_tool(tool, args)
                assert result.is_error, tool
                text = _text(result)
                assert text.strip() != f"Error executing tool {tool}" and len(text) > 30, (tool, text)
            # Qdrant may answer an empty index without asking PostgreSQL; if the database is asked, it says so.
            found = await client.call_tool("search", {"query": "install"})
            assert (found.is_error and "database" in _text(found).lower()) or not found.structured_content["results"]
            health = await client.call_tool("health", {})
            assert not health.is_error and health.structured_content["status"] == "error"  # type: ignore[index]


SECRET = "s3cret-pw"
BASIC = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()


@pytest.fixture(scope="module")
async def private_site() -> AsyncIterator[tuple[str, list[tuple[str, str | None]]]]:
    """A site whose pages need HTTP Basic auth, with a redirect to another origin (127.0.0.2) that logs headers."""
    seen: list[tuple[str, str | None]] = []

    async def page(request: web.Request) -> web.Response:
        seen.append((request.host, request.headers.get("Authorization")))
        if request.headers.get("Authorization") != BASIC:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="docs"'})
        body = f"<html><head><title>Private {request.path}</title></head><body><main><h1 id='setup'>Setup</h1>"
        body += f"<p>The quokka configuration of {request.path} lives in quokka.toml.</p>"
        body += "<a href='/docs/more.html'>More</a></main></body></html>"
        return web.Response(text=body, content_type="text/html")

    async def away(request: web.Request) -> web.Response:
        seen.append((request.host, request.headers.get("Authorization")))
        port = request.url.port
        raise web.HTTPFound(f"http://127.0.0.2:{port}/guide")

    app = web.Application()
    app.router.add_get("/guide", page)
    app.router.add_get("/docs/guide.html", page)
    app.router.add_get("/docs/more.html", page)
    app.router.add_get("/away", away)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", 0)  # reachable as 127.0.0.1 and 127.0.0.2: two origins
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_credentials_are_used_for_the_fetch_and_never_stored_or_shown(
    clean: Runtime, private_site: tuple[str, list[tuple[str, str | None]]]
) -> None:
    netloc, seen = private_site
    async with connect(clean, "legacy") as client:
        indexed = await client.call_tool("index_web_page", {"url": f"http://alice:{SECRET}@{netloc}/guide"})
        assert not indexed.is_error, _text(indexed)
        assert SECRET not in str(indexed.structured_content) and "alice" not in str(indexed.structured_content)
        found = await client.call_tool("search", {"query": "quokka configuration"})
        assert found.structured_content["results"], found  # type: ignore[index]
        assert SECRET not in str(found.structured_content) and "alice@" not in str(found.structured_content)
        sources = await client.call_tool("list_sources", {})
        assert SECRET not in str(sources.structured_content)
        # An error names the URL without its password.
        failed = await client.call_tool("index_web_page", {"url": f"http://alice:{SECRET}@{netloc}/missing"})
        assert failed.is_error and "404" in _text(failed) and SECRET not in _text(failed), _text(failed)
        # Without the credentials the page is refused: they were really used, and only for that fetch.
        again = await client.call_tool("index_web_page", {"url": f"http://{netloc}/guide", "force": True})
        assert again.is_error and "401" in _text(again)
    assert (netloc, BASIC) in seen
    async with connect(clean, "legacy") as client:
        seen.clear()
        await client.call_tool("index_web_page", {"url": f"http://alice:{SECRET}@{netloc}/away"})
    # Credentials do not follow a redirect to another origin.
    assert seen[0] == (netloc, BASIC) and all(auth is None for host, auth in seen if host.startswith("127.0.0.2"))
    assert any(host.startswith("127.0.0.2") for host, _ in seen)


def test_log_lines_and_tracebacks_are_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("mcp_web_ingest.test_redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("fetching %s failed", f"http://alice:{SECRET}@docs.example/x")
        try:
            raise RuntimeError(f"boom at https://bob:{SECRET}@other.example/")
        except RuntimeError:
            logger.exception("crawl step failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert SECRET not in out and "http://***@docs.example/x" in out and "https://***@other.example/" in out


async def test_a_crawl_sends_the_start_urls_credentials_to_its_origin_only(
    clean: Runtime, private_site: tuple[str, list[tuple[str, str | None]]]
) -> None:
    netloc, seen = private_site
    seen.clear()
    async with connect(clean, "legacy") as client:
        args = {
            "url": f"http://alice:{SECRET}@{netloc}/docs/guide.html",
            "max_pages": 5,
            "max_depth": 1,
            "wait_seconds": 60,
        }
        crawled = await client.call_tool("index_web_page", args)
        assert not crawled.is_error, _text(crawled)
        result = crawled.structured_content
        assert result is not None and result["job"]["counts"]["indexed"] == 2, result
        status = await client.call_tool("crawl_status", {"job_id": result["job"]["job_id"]})
        assert SECRET not in str(result) and SECRET not in str(status.structured_content)
    assert all(auth == BASIC for host, auth in seen if host == netloc)
