"""The protocol beyond tools, through the SDK's in-memory client on both eras (2025-11-25 handshake and 2026-07-28):
resources (list, read, page through, subscribe), completions, prompts and the server's log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import (
    INVALID_PARAMS,
    LoggingMessageNotificationParams,
    PromptReference,
    ResourceTemplateReference,
    ResourceUpdatedNotification,
    TextResourceContents,
)

from mcp_web_ingest.crawl.jobs import CrawlParams
from mcp_web_ingest.interface import resources
from mcp_web_ingest.interface.completions import MAX_VALUES
from mcp_web_ingest.interface.resource_updates import POLL_S
from mcp_web_ingest.interface.resource_uris import PAGE_TEMPLATE, SUMMARY_TEMPLATE, page_uri
from mcp_web_ingest.interface.resources import RESOURCE_NOT_FOUND
from mcp_web_ingest.interface.server import create_server
from mcp_web_ingest.runtime import Runtime, RuntimeHolder

MODES = ("legacy", "auto")  # the 2025-11-25 handshake, and 2026-07-28 negotiated by server/discover


@contextlib.asynccontextmanager
async def client_of(runtime: Runtime, mode: str, **options: Any) -> AsyncIterator[Client]:
    """The SDK's in-memory client of a fresh server sharing the test runtime."""
    server = create_server(runtime.settings, RuntimeHolder(runtime.settings, runtime))
    async with Client(server, mode=mode, **options) as client:  # type: ignore[arg-type]
        yield client


async def _index(runtime: Runtime, url: str, collection: str | None = None) -> None:
    await runtime.pipeline.index_page(url, collection)


async def eventually(check: Any, within: float = 10.0) -> None:
    """Wait until ``check()`` is true (notifications arrive on their own schedule)."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


# --- resources ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_page_resources_list_and_read(clean: Runtime, site_url: str, mode: str) -> None:
    install, config = f"{site_url}/guide/install.html", f"{site_url}/guide/config.html"
    await _index(clean, install, "guides")
    await _index(clean, config, "guides")
    async with client_of(clean, mode) as client:
        templates = {t.uri_template: t for t in (await client.list_resource_templates()).resource_templates}
        assert set(templates) == {PAGE_TEMPLATE, SUMMARY_TEMPLATE}
        assert templates[PAGE_TEMPLATE].mime_type == "text/markdown"

        listed = (await client.list_resources()).resources
        by_uri = {str(r.uri): r for r in listed}
        uri = page_uri("guides", install)
        assert uri in by_uri and "webingest://guides/pages" in by_uri
        assert by_uri[uri].name == install and by_uri[uri].title and by_uri[uri].mime_type == "text/markdown"

        read = (await client.read_resource(uri)).contents[0]
        assert isinstance(read, TextResourceContents) and read.mime_type == "text/markdown"
        head, _, body = read.text.partition("\n---\n\n")
        assert f'url: "{install}"' in head and 'collection: "guides"' in head
        assert "title:" in head and "indexed_at:" in head and "fetched_at:" in head and 'format: "html"' in head
        assert "checksum" in body.lower()  # the page's own text

        summary = (await client.read_resource("webingest://guides/pages")).contents[0]
        assert isinstance(summary, TextResourceContents)
        assert page_uri("guides", install) in summary.text and page_uri("guides", config) in summary.text

        # Not indexed here: the specification's resource-not-found error, saying what to do.
        with pytest.raises(MCPError) as missing:
            await client.read_resource(page_uri("guides", f"{site_url}/crawl/faq.html"))
        assert missing.value.error.code == RESOURCE_NOT_FOUND and "index_web_page" in missing.value.error.message
        with pytest.raises(MCPError) as other:
            await client.read_resource(page_uri("nowhere", install))
        assert other.value.error.code == RESOURCE_NOT_FOUND
        with pytest.raises(MCPError) as bad:
            await client.read_resource(page_uri("guides", "javascript:alert(1)"))
        assert bad.value.error.code == INVALID_PARAMS


async def test_resources_list_pages_through_with_cursors(
    clean: Runtime, site_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = ["guide/install.html", "guide/config.html", "crawl/index.html", "crawl/usage.html", "crawl/faq.html"]
    for i, path in enumerate(pages):
        await _index(clean, f"{site_url}/{path}", "c1" if i % 2 else "c2")
    monkeypatch.setattr(resources, "PAGE_SIZE", 2)
    async with client_of(clean, "legacy") as client:
        seen: list[str] = []
        cursor: str | None = None
        calls = 0
        while True:
            result = await client.list_resources(cursor=cursor)
            calls += 1
            assert len(result.resources) <= 2
            seen += [str(r.uri) for r in result.resources]
            cursor = result.next_cursor
            if cursor is None:
                break
        expected = {"webingest://default/pages", "webingest://c1/pages", "webingest://c2/pages"}
        expected |= {page_uri("c1" if i % 2 else "c2", f"{site_url}/{p}") for i, p in enumerate(pages)}
        assert len(seen) == len(set(seen)) and set(seen) == expected
        assert calls == 4
        with pytest.raises(MCPError) as bad:
            await client.list_resources(cursor="not-a-cursor")
        assert bad.value.error.code == INVALID_PARAMS


async def test_subscribed_page_notifies_when_a_refresh_changes_it(clean: Runtime, site: str) -> None:
    usage, faq = f"{site}/crawl/usage.html", f"{site}/crawl/faq.html"
    for url in (usage, faq):
        await _index(clean, url)
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    async with client_of(clean, "legacy", message_handler=on_message) as client:
        with pytest.warns(MCPDeprecationWarning):
            await client.subscribe_resource(page_uri("default", usage))
        async with aiohttp.ClientSession() as s:
            async with s.get(usage) as r:
                body = await r.text()
            changed = body.replace("</main>", "<h2 id='fresh'>Fresh section</h2><p>Wombat cadence.</p></main>")
            async with s.put(usage, data=changed.encode()):
                pass
        job_id = await clean.crawler.refresh(url_prefix=f"{site}/crawl/")
        assert (await clean.crawler.wait(job_id, 60)).state == "done"
        await eventually(lambda: page_uri("default", usage) in updates)
        await asyncio.sleep(2 * POLL_S)
        assert set(updates) == {page_uri("default", usage)}  # faq.html did not change; nothing else subscribed


async def test_listen_stream_hears_page_updates(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/guide/install.html"
    uri = page_uri("default", url)
    async with client_of(clean, "auto") as client:
        async with client.listen(resource_subscriptions=[uri]) as sub:
            await _index(clean, url)  # a page added counts as a change of its resource
            event = await asyncio.wait_for(sub.__anext__(), 10)
        assert getattr(event, "uri", None) == uri


# --- completions --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_completions_from_the_index(clean: Runtime, site_url: str, mode: str) -> None:
    await _index(clean, f"{site_url}/guide/install.html", "py-docs")
    await _index(clean, f"{site_url}/crawl/usage.html", "py-tutorial")
    await clean.store.catalog.ensure_collection("django")
    template = ResourceTemplateReference(type="ref/resource", uri=PAGE_TEMPLATE)
    prompt = PromptReference(type="ref/prompt", name="answer_from_docs")
    async with client_of(clean, mode) as client:
        for ref in (template, prompt):
            done = (await client.complete(ref, {"name": "collection", "value": "py"})).completion
            assert done.values == ["py-docs", "py-tutorial"] and done.total == 2 and not done.has_more
        urls = await client.complete(template, {"name": "url", "value": site_url}, {"collection": "py-docs"})
        assert urls.completion.values == [f"{site_url}/guide/install.html"]
        sites = await client.complete(prompt, {"name": "url_prefix", "value": ""})
        assert sites.completion.values == [f"{site_url}/"]
        folders = await client.complete(prompt, {"name": "url_prefix", "value": f"{site_url}/"})
        assert folders.completion.values == [f"{site_url}/crawl/", f"{site_url}/guide/"]
        # Wildcards are taken literally; unknown prompts and arguments have nothing to offer.
        assert (await client.complete(template, {"name": "collection", "value": "%"})).completion.values == []
        unknown = PromptReference(type="ref/prompt", name="test_prompt_with_arguments")
        assert (await client.complete(unknown, {"name": "arg1", "value": "test"})).completion.values == []


async def test_completions_are_bounded_and_fast(clean: Runtime, site_url: str) -> None:
    for i in range(150):
        await clean.store.catalog.ensure_collection(f"bulk-{i:03d}")
    job_id = await clean.crawler.start(f"{site_url}/status/404", CrawlParams(max_depth=1, max_pages=2), "bulk-000")
    await clean.crawler.wait(job_id, 30)
    async with client_of(clean, "legacy") as client:
        ref = ResourceTemplateReference(type="ref/resource", uri=SUMMARY_TEMPLATE)
        many = (await client.complete(ref, {"name": "collection", "value": "bulk-"})).completion
        assert len(many.values) == MAX_VALUES and many.total == 150 and many.has_more
        assert many.values == sorted(many.values)
        follow = PromptReference(type="ref/prompt", name="index_docs_site")
        jobs = (await client.complete(follow, {"name": "job_id", "value": job_id[:8]})).completion
        assert jobs.values == [job_id] and jobs.total == 1
        timings = []
        for _ in range(21):
            started = time.perf_counter()
            await client.complete(ref, {"name": "collection", "value": "bulk-1"})
            timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.05, timings


# --- prompts ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_render(clean: Runtime, mode: str) -> None:
    async with client_of(clean, mode) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert set(prompts) == {"answer_from_docs", "index_docs_site", "whats_new"}
        assert [a.name for a in prompts["answer_from_docs"].arguments if a.required] == ["question"]

        answer = await client.get_prompt("answer_from_docs", {"question": "How do I verify a download?"})
        text = answer.messages[0].content.text  # type: ignore[union-attr]
        assert "search" in text and "read_page" in text and "deep link" in text
        assert text.endswith("Question: How do I verify a download?") and 'collection="default"' in text

        index = await client.get_prompt("index_docs_site", {"url": "https://docs.example.org/en/", "max_pages": "50"})
        text = index.messages[0].content.text  # type: ignore[union-attr]
        assert "crawl_status" in text and "exclude" in text and "max_pages=50" in text
        assert "https://docs.example.org/en/" in text

        news = await client.get_prompt("whats_new", {"collection": "guides", "since": "7d"})
        text = news.messages[0].content.text  # type: ignore[union-attr]
        assert "what_changed" in text and 'collection="guides", since="7d"' in text

        with pytest.raises(MCPError):
            await client.get_prompt("index_docs_site", {"url": "file:///etc/passwd"})
        with pytest.raises(MCPError):
            await client.get_prompt("whats_new", {"collection": "no spaces allowed"})


# --- logging ------------------------------------------------------------------------------------------------------


@pytest.fixture
def info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """This package logs at info (a server's LOG_LEVEL default) for the test."""
    caplog.set_level(logging.INFO, logger="mcp_web_ingest")


async def _failing_crawl(client: Client, site_url: str) -> None:
    """A crawl whose start page is a 404: info records (started, finished) and a warning (the failed URL)."""
    res = await client.call_tool(
        "index_web_page", {"url": f"{site_url}/status/404", "max_pages": 2, "wait_seconds": 30}
    )
    assert not res.is_error and res.structured_content["job"]["state"] == "failed", res.content


async def test_log_notifications_follow_the_session_level(clean: Runtime, site_url: str, info_logs: None) -> None:
    got: list[LoggingMessageNotificationParams] = []
    silent: list[LoggingMessageNotificationParams] = []

    async def collect(params: LoggingMessageNotificationParams) -> None:
        got.append(params)

    async def never(params: LoggingMessageNotificationParams) -> None:
        silent.append(params)

    async with (
        client_of(clean, "legacy", logging_callback=collect) as client,
        client_of(clean, "legacy", logging_callback=never) as bystander,
    ):
        caps = client.server_capabilities
        assert caps.logging is not None and caps.completions is not None and caps.resources.subscribe
        with pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("warning")
        await _failing_crawl(client, site_url)
        await eventually(lambda: any("/status/404 failed" in str(p.data) for p in got))
        assert {p.level for p in got} == {"warning"}  # "crawl … started/finished" are info: below the level
        assert all(p.logger and p.logger.startswith("mcp_web_ingest") for p in got)

        with pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("info")
        got.clear()
        logging.getLogger("mcp_web_ingest.test").info("fetching http://alice:s3cret@docs.example.org/a")
        await _failing_crawl(bystander, site_url)
        await eventually(lambda: any("finished: failed" in str(p.data) for p in got))
        assert {"info", "warning"} <= {p.level for p in got}
        assert any("crawl" in str(p.data) and "started" in str(p.data) for p in got)
        texts = " ".join(str(p.data) for p in got)
        assert "alice" not in texts and "s3cret" not in texts and "***@docs.example.org" in texts

        with pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("error")
        got.clear()
        await _failing_crawl(client, site_url)
        await asyncio.sleep(0.3)
        assert got == []
    assert silent == []  # a session that never set a level hears nothing


async def test_log_delivery_is_per_request_on_2026(clean: Runtime, site_url: str, info_logs: None) -> None:
    got: list[LoggingMessageNotificationParams] = []

    async def collect(params: LoggingMessageNotificationParams) -> None:
        got.append(params)

    async with client_of(clean, "auto", logging_callback=collect, log_level="warning") as client:
        await _failing_crawl(client, site_url)
        assert [p.level for p in got] == ["warning"] and "/status/404 failed" in str(got[0].data)
    got.clear()
    async with client_of(clean, "auto", logging_callback=collect) as client:  # no opt-in: no log
        await _failing_crawl(client, site_url)
    assert got == []
