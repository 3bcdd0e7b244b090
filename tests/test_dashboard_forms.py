"""The dashboard's forms and pages in process (httpx over ASGI, the session's runtime): bad input, missing things."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from mcp_web_ingest.interface.dashboard import dashboard_routes
from mcp_web_ingest.runtime import Runtime, RuntimeHolder

COLLECTION = "dashboard-forms"
ORIGIN = {"Origin": "http://dashboard.test"}


@pytest.fixture
async def ui(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the dashboard's routes on the test runtime."""
    await runtime.store.delete_source(COLLECTION)
    app = Starlette(routes=dashboard_routes(RuntimeHolder(runtime.settings, runtime), runtime.settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dashboard.test") as client:
        yield client
    await runtime.store.delete_source(COLLECTION)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"url": "ftp://example.com/x"}, "http"),
        ({"url": ""}, "URL"),
        ({"url": "https://example.com/", "max_depth": "two"}, "Depth must be a whole number"),
        ({"url": "https://example.com/", "max_pages": "1.5"}, "Pages must be a whole number"),
        ({"url": "https://example.com/", "scope": "planet"}, "Scope must be one of path, host, domain"),
        ({"url": "https://example.com/", "max_depth": "1", "include": "(unclosed"}, "include"),
        ({"url": "https://example.com/", "collection": "no spaces allowed"}, "collection"),
        ({"url": "https://example.com/\x00"}, "control character"),
    ],
)
async def test_index_form_refuses_bad_input_and_keeps_what_was_typed(
    ui: httpx.AsyncClient, runtime: Runtime, form: dict[str, str], message: str
) -> None:
    r = await ui.post("/ui/index", data={"collection": COLLECTION, **form}, headers=ORIGIN)
    assert r.status_code == 400
    alert = r.text.split('role="alert">', 1)[1].split("</p>", 1)[0]
    assert message.lower() in alert.lower(), alert
    # The form comes back holding what was typed.
    for name in ("url", "max_depth", "max_pages"):
        if name in form and "\x00" not in form[name]:
            assert f'name="{name}" type' in r.text and f'value="{html.escape(form[name])}"' in r.text
    assert await runtime.store.catalog.page_urls(COLLECTION, None) == []  # nothing stored
    assert [j for j in await runtime.jobs.recent(100) if j.collection == COLLECTION] == []  # no job started


async def test_index_form_indexes_one_page_and_starts_a_crawl(ui: httpx.AsyncClient, site_url: str) -> None:
    r = await ui.post(
        "/ui/index", data={"url": f"{site_url}/guide/install.html", "collection": COLLECTION}, headers=ORIGIN
    )
    assert r.status_code == 200 and "Installing the Froobnicator" in r.text and 'id="result-h"' in r.text
    form = {"url": f"{site_url}/crawl/index.html", "max_depth": "1", "max_pages": "3", "collection": COLLECTION}
    r = await ui.post("/ui/index", data=form, headers=ORIGIN)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/jobs/")
    job = r.headers["location"].rsplit("/", 1)[1]
    status = (await ui.get(f"/ui/api/jobs/{job}")).json()
    assert status["job_id"] == job and status["collection"] == COLLECTION and status["kind"] == "crawl"
    page = await ui.get(f"/ui/jobs/{job}")
    assert page.status_code == 200 and f'data-job-id="{job}"' in page.text


async def test_missing_things_and_a_starting_server(ui: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await ui.get("/ui/api/jobs/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and "job" in r.json()["error"].lower()
    r = await ui.get("/ui/jobs/not-a-job")
    assert r.status_code == 400 and 'role="alert"' in r.text
    r = await ui.get(f"/ui/sources/confirm?action=delete&collection={COLLECTION}&domain=x&site=http://x")
    assert r.status_code == 404 and "not indexed" in r.text
    r = await ui.get("/ui/search?q=anything&k=lots")
    assert r.status_code == 400 and "Results must be a whole number" in r.text
    r = await ui.get("/ui/search?q=anything&mode=sideways")
    assert r.status_code == 400 and "mode" in r.text
    r = await ui.post("/ui/sources/refresh", data={"collection": COLLECTION, "site": "http://x"}, headers=ORIGIN)
    assert r.status_code == 400 and "Nothing to refresh" in r.text
    r = await ui.post("/ui/index", data={"url": "https://example.com/"})  # no Origin: not from our pages
    assert r.status_code == 403
    starting = Starlette(routes=dashboard_routes(RuntimeHolder(runtime.settings), runtime.settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=starting), base_url="http://t") as client:
        r = await client.get("/ui/sources")
        assert r.status_code == 503 and "starting" in r.text


async def test_without_a_token_there_is_no_sign_in(ui: httpx.AsyncClient) -> None:
    r = await ui.post("/ui/login", data={"token": "x", "next": "/ui/health"}, headers=ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/ui/health"
    r = await ui.post("/ui/logout", headers=ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/ui/sources"
    r = await ui.get("/ui")
    assert r.status_code == 303 and r.headers["location"] == "/ui/sources"
