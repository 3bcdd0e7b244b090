"""The dashboard at /ui in real headless Chromium (Debian's, driven by Playwright) against a real server process.

Screenshots of every page at 1280×800 and 390×844 are written to .data/dashboard-screenshots/ (DASHBOARD_SCREENSHOTS
overrides it); each page is also checked for sideways scrolling, cut-off, clipped and overlapping elements.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mcp_web_ingest.interface.auth import UI_COOKIE, ui_session_value
from mcp_web_ingest.runtime import Runtime

from .servers import ServerProcess, running_server

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "dashboard-test-token-5d1f"
COLLECTION = "dashboard-e2e"
ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("DASHBOARD_SCREENSHOTS", ROOT / ".data/dashboard-screenshots"))
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

# Runs in the page: what a reader would see as broken layout. Returns one line per problem.
LAYOUT_CHECK = """() => {
  const problems = [];
  const vw = document.documentElement.clientWidth;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '') +
    ' "' + (e.innerText || e.value || '').trim().slice(0, 40) + '"';
  const shown = (e) => {
    if (e.closest('.visually-hidden, .skip, [hidden]')) return false;
    const r = e.getBoundingClientRect();
    const s = getComputedStyle(e);
    return r.width > 1 && r.height > 1 && s.visibility !== 'hidden' && s.display !== 'none';
  };
  if (document.documentElement.scrollWidth > vw + 1)
    problems.push('page scrolls sideways: ' + document.documentElement.scrollWidth + 'px wide in ' + vw + 'px');
  const boxes = [...document.querySelectorAll(
    'header a, header button, main h1, main h2, main h3, main p, main label, main input, main select, ' +
    'main textarea, main button, main a, main th, main td, main dt, main dd, main li, main pre, main .badge, ' +
    'main progress')].filter(shown);
  for (const e of boxes) {
    const r = e.getBoundingClientRect();
    if (r.left < -1 || r.right > vw + 1) problems.push('cut off: ' + name(e) + ' spans ' + r.left + '..' + r.right);
    if (!['INPUT', 'SELECT', 'TEXTAREA', 'PROGRESS'].includes(e.tagName) && e.scrollWidth > e.clientWidth + 1)
      problems.push('text wider than its box: ' + name(e) + ' ' + e.scrollWidth + ' > ' + e.clientWidth);
  }
  const leaves = boxes.filter((e) => ['A', 'BUTTON', 'INPUT', 'SELECT', 'TEXTAREA', 'LABEL', 'H1', 'H2', 'H3',
    'PROGRESS'].includes(e.tagName) || e.classList.contains('badge'));
  for (let i = 0; i < leaves.length; i++) for (let j = i + 1; j < leaves.length; j++) {
    const a = leaves[i], b = leaves[j];
    if (a.contains(b) || b.contains(a)) continue;
    // Per line box: an inline link that wraps has a bounding box spanning its neighbours, but no line of it does.
    const meet = (p, q) => Math.min(p.right, q.right) - Math.max(p.left, q.left) > 1 &&
      Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top) > 1;
    const hit = [...a.getClientRects()].some((p) => [...b.getClientRects()].some((q) => meet(p, q)));
    if (hit) problems.push('overlap: ' + name(a) + ' and ' + name(b));
  }
  return problems;
}"""


@pytest.fixture(scope="module")
async def server(data_dir: Path, runtime: Runtime) -> AsyncIterator[ServerProcess]:
    """`mcp-web-ingest serve` with a token, on the session's database (cleared of this module's collection)."""
    await runtime.store.delete_source(COLLECTION)
    async with running_server(data_dir, MCP_AUTH_TOKEN=TOKEN) as process:
        yield process
    await runtime.store.delete_source(COLLECTION)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium under Playwright (Playwright's own browsers are never downloaded)."""
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat at fixture setup
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the dashboard tests need a real browser")
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        await chromium.close()


async def _signed_in(browser: Browser, base: str, viewport: str) -> Page:
    """A page of a fresh browser context, signed in through the login form."""
    context = await browser.new_context(viewport=VIEWPORTS[viewport])  # type: ignore[arg-type]
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(base + "/ui/sources")
    assert "/ui/login" in page.url  # sent to sign in first
    await page.get_by_label("Access token").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/ui/sources$"))
    page.errors = errors  # type: ignore[attr-defined]
    return page


async def _look(page: Page, name: str, viewport: str) -> None:
    """Write the page's screenshot and fail on broken layout or script errors."""
    SHOTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a local folder, once a page
    await page.screenshot(path=str(SHOTS / f"{name}-{viewport}.png"), full_page=True)
    problems = await page.evaluate(LAYOUT_CHECK)
    assert problems == [], f"{name} at {viewport}: {problems}"
    assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def _nav(page: Page, name: str) -> None:
    """Follow one of the dashboard's navigation links."""
    await page.get_by_role("navigation").get_by_role("link", name=name).click()
    await page.wait_for_load_state()


async def _text(page: Page, selector: str) -> str:
    return (await page.locator(selector).inner_text()).strip()


async def test_dashboard_refuses_requests_without_the_token(server: ServerProcess) -> None:
    base = server.base
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/ui/sources?x=1", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["location"] == "/ui/login?next=%2Fui%2Fsources%3Fx%3D1"
        async with s.get(base + "/ui/api/jobs/00000000-0000-0000-0000-000000000000") as r:
            assert r.status == 401
        post = {"url": "http://127.0.0.1:1/", "collection": COLLECTION}
        async with s.post(base + "/ui/index", data=post, headers={"Origin": base}) as r:
            assert r.status == 401
        async with s.get(
            base + "/ui/search?q=x", headers={"Cookie": f"{UI_COOKIE}=1.deadbeef"}, allow_redirects=False
        ) as r:
            assert r.status == 303  # a forged cookie is no session
        expired = ui_session_value(TOKEN, now=0)
        async with s.get(base + "/ui/health", headers={"Cookie": f"{UI_COOKIE}={expired}"}, allow_redirects=False) as r:
            assert r.status == 303
        async with s.get(base + "/ui/static/app.css") as r:
            assert r.status == 200  # the style sheet holds nothing secret
        async with s.post(
            base + "/ui/login", data={"token": "wrong", "next": "/ui/health"}, headers={"Origin": base}
        ) as r:
            assert r.status == 401 and "not this server" in await r.text()
        cookie = {"Cookie": f"{UI_COOKIE}={ui_session_value(TOKEN)}"}
        async with s.get(base + "/ui/health", headers=cookie) as r:
            assert r.status == 200 and "Health" in await r.text()
            assert "script-src 'self'" in r.headers["content-security-policy"]
        # A signed-in browser tricked into posting from another site: its Origin is refused, a missing one too.
        async with s.post(base + "/ui/index", data=post, headers={**cookie, "Origin": "https://evil.example"}) as r:
            assert r.status == 403
        async with s.post(base + "/ui/index", data=post, headers=cookie) as r:
            assert r.status == 403
        # After signing in, only dashboard paths go back to: never another site.
        form = {"token": TOKEN, "next": "//evil.example/x"}
        async with s.post(base + "/ui/login", data=form, headers={"Origin": base}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["location"] == "/ui/sources"
            assert (
                "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
            )
        async with s.post(base + "/mcp", json={}, headers=cookie) as r:
            assert r.status == 401  # the dashboard's cookie is no key to /mcp


async def test_dashboard_end_to_end(
    server: ServerProcess, browser: Browser, site_url: str, docs_url: str, runtime: Runtime
) -> None:
    page = await _signed_in(browser, server.base, "desktop")

    # Index one page through the form.
    await _nav(page, "Index")
    await page.get_by_label("URL").fill(f"{site_url}/guide/install.html")
    await page.get_by_label("Collection").fill(COLLECTION)
    await page.get_by_role("button", name="Index", exact=True).click()
    await page.wait_for_selector("#result-h")
    assert "Installing the Froobnicator" in await _text(page, "section[aria-labelledby=result-h]")
    await _look(page, "index", "desktop")

    # It is under Sources.
    await _nav(page, "Sources")
    row = page.locator("tr", has_text=COLLECTION)
    await row.wait_for()
    assert (await row.locator("td[data-label=Pages]").inner_text()).strip() == "1"
    await _look(page, "sources", "desktop")

    # The playground finds it, with each leg's rank, the fused score and the time per leg.
    await _nav(page, "Search")
    await page.get_by_label("Query").fill("prerequisites for building the froobnicator from source")
    await page.get_by_label("Collection").select_option(COLLECTION)
    await page.get_by_role("button", name="Search").click()
    first = page.locator("li.result").first
    await first.wait_for()
    link = first.locator("h3 a")
    assert (await link.get_attribute("href") or "").startswith(f"{site_url}/guide/install.html#")
    legs = await first.locator("table.legs tbody").inner_text()
    assert "dense" in legs and "lexical" in legs
    assert "fused" in await first.locator(".scores").inner_text()
    timings = await page.locator("dl.timings").inner_text()
    assert "dense" in timings and "lexical" in timings and "fusion" in timings
    await _look(page, "search", "desktop")

    # A crawl of the Python docs (hundreds of pages): its counts rise while the page is open, then it is cancelled.
    await _nav(page, "Index")
    await page.get_by_label("URL").fill(f"{docs_url}/library/index.html")
    await page.get_by_label("Depth").fill("2")
    await page.get_by_label("Pages", exact=True).fill("300")
    await page.get_by_label("Collection").fill(COLLECTION)
    await page.get_by_role("button", name="Index", exact=True).click()
    await page.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f-]+$"))
    seen = [int(await _text(page, "[data-count=fetched]"))]
    for _ in range(60):
        await asyncio.sleep(0.5)
        seen.append(int(await _text(page, "[data-count=fetched]")))
        if len(set(seen)) >= 3:
            break
    job_text = await _text(page, "#job") + await _text(page, "ul.failed")
    assert len(set(seen)) >= 3 and seen == sorted(seen), (
        f"the fetched count did not rise on the page: {seen} {job_text}"
    )
    assert await _text(page, "[data-field=state]") == "running"
    await _look(page, "job", "desktop")
    await page.get_by_role("button", name="Cancel crawl").click()
    await page.locator("[data-field=state]", has_text="cancelled").wait_for()
    assert await page.locator("[data-field=cancel-form]").is_hidden()

    # Health shows every component, the optional ones that are off too.
    await _nav(page, "Health")
    components = await page.locator("table.cards").first.inner_text()
    for name in ("database", "embedder", "splade", "reranker", "crawl4ai", "qdrant"):
        assert name in components
    await _look(page, "health", "desktop")

    # Refresh the test site's source, after confirming: a refresh job that finds its page unchanged.
    await _nav(page, "Sources")
    site_row = page.locator("tr", has_text=COLLECTION).filter(has_text=site_url.split("//", 1)[1])
    await site_row.get_by_role("link", name=re.compile("^Refresh")).click()
    assert "Refresh the 1 page of" in await _text(page, "main form")
    await page.get_by_role("button", name="Refresh").click()
    await page.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f-]+$"))
    await page.locator("#job[data-finished=true]").wait_for()
    assert await _text(page, "[data-field=state]") == "done"
    assert await _text(page, "[data-count=unchanged]") == "1"

    # Delete the collection's sources (the test site's and the docs'), each after confirming.
    await _nav(page, "Sources")
    rows = page.locator("tr", has_text=COLLECTION)
    assert await rows.count() == 2
    for left in (1, 0):
        await rows.first.get_by_role("link", name=re.compile("^Delete")).click()
        assert "cannot be undone" in await _text(page, "main form")
        await page.get_by_role("button", name="Delete").click()
        await page.wait_for_selector("p.alert.ok")
        assert await rows.count() == left
    assert await runtime.store.catalog.page_urls(COLLECTION, None) == []  # gone from the database, not just the page
    await page.context.close()


async def test_dashboard_pages_on_a_phone(server: ServerProcess, browser: Browser, site_url: str) -> None:
    """Every page at 390×844 (and the login page at both sizes): readable, nothing cut off or overlapping."""
    async with aiohttp.ClientSession() as s:
        headers = {"Cookie": f"{UI_COOKIE}={ui_session_value(TOKEN)}", "Origin": server.base}
        form: dict[str, Any] = {"url": f"{site_url}/guide/config.html", "collection": COLLECTION}
        async with s.post(server.base + "/ui/index", data=form, headers=headers) as r:
            assert r.status == 200
        crawl = {"url": f"{site_url}/crawl/index.html", "max_depth": "1", "max_pages": "4", "collection": COLLECTION}
        async with s.post(server.base + "/ui/index", data=crawl, headers=headers, allow_redirects=False) as r:
            assert r.status == 303
            job_page = r.headers["location"]
    for viewport in VIEWPORTS:
        context = await browser.new_context(viewport=VIEWPORTS[viewport])  # type: ignore[arg-type]
        page = await context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        await page.goto(server.base + "/ui/login")
        await _look(page, "login", viewport)
        await context.close()
    page = await _signed_in(browser, server.base, "phone")
    for name, path in (
        ("sources", "/ui/sources"),
        ("index", "/ui/index"),
        ("search", f"/ui/search?q=configuration+file&collection={COLLECTION}"),
        ("health", "/ui/health"),
    ):
        await page.goto(server.base + path)
        await _look(page, name, "phone")
    await page.goto(server.base + job_page)
    await page.locator("#job[data-finished=true]").wait_for()
    await _look(page, "job", "phone")
    await page.context.close()


async def test_serve_prints_the_dashboard_url(server: ServerProcess) -> None:
    assert server.proc.stderr is not None
    lines = [(await asyncio.wait_for(server.proc.stderr.readline(), 10)).decode() for _ in range(2)]
    assert f"dashboard: {server.base}/ui\n" in lines, lines


def test_text_from_pages_cannot_become_markup_or_script() -> None:
    """Titles, sections, texts and links come from crawled pages: they are escaped, and only http(s) links are kept."""
    from starlette.requests import Request

    from mcp_web_ingest.interface.dashboard.render import render, safe_href
    from mcp_web_ingest.interface.schemas import LegOut, SearchHitOut, SearchResult

    assert safe_href("javascript:alert(1)") == "#" and safe_href(" JavaScript:alert(1)") == "#"
    assert safe_href("data:text/html,x") == "#" and safe_href("https://a.example/x#y") == "https://a.example/x#y"
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    hit = SearchHitOut(
        rank=1, url="javascript:alert(3)", deep_link="javascript:alert(4)", title=hostile, section=hostile,
        text=hostile, score=1.0, legs=[LegOut(leg="dense", rank=1, score=0.5)], collection="c",
    )  # fmt: skip
    outcome = SearchResult(query=hostile, mode="hybrid", legs_used=["dense"], took_ms=1, truncated=False, results=[hit])
    request = Request({"type": "http", "method": "GET", "path": "/ui/search", "headers": [], "query_string": b""})
    form = {"q": hostile, "mode": "hybrid", "collection": "", "k": "10", "version": ""}
    page = render(
        request, "search.html", title="Search", active="search", signed_in=False, error=None, notice=None, form=form,
        outcome=outcome, max_k=50, collection_options=[("", "All")], can_rerank=False,
    )  # fmt: skip
    html = bytes(page.body).decode()
    assert "<script>alert" not in html and "<img src=x" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


AXE = ROOT / ".tools/node_modules/axe-core/axe.min.js"
AXE_RUN = """async () => {
  const result = await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']});
  return {
    passes: result.passes.length,
    violations: result.violations.map((v) => v.id + ': ' + v.help + ' @ ' +
      v.nodes.map((n) => n.target.join(' ')).join(', ')),
  };
}"""


async def test_dashboard_pages_pass_axe_accessibility_checks(
    server: ServerProcess, browser: Browser, site_url: str
) -> None:
    """axe-core's WCAG 2 A/AA rules (labels, contrast, landmarks, names, keyboard) on every page, both sizes."""
    if not AXE.exists():
        if os.environ.get("CI"):
            pytest.fail("axe-core is not installed (make node-tools)")
        pytest.skip("axe-core is not installed (make node-tools)")
    async with aiohttp.ClientSession() as s:
        headers = {"Cookie": f"{UI_COOKIE}={ui_session_value(TOKEN)}", "Origin": server.base}
        form = {"url": f"{site_url}/guide/install.html", "collection": COLLECTION}
        async with s.post(server.base + "/ui/index", data=form, headers=headers) as r:
            assert r.status == 200
        crawl = {"url": f"{site_url}/crawl/index.html", "max_depth": "1", "max_pages": "3", "collection": COLLECTION}
        async with s.post(server.base + "/ui/index", data=crawl, headers=headers, allow_redirects=False) as r:
            job_page = r.headers["location"]
    paths = ["/ui/sources", "/ui/index", job_page, f"/ui/search?q=install&collection={COLLECTION}", "/ui/health"]
    paths += ["/ui/login", "/ui/sources/confirm?action=nothing"]  # the error page too
    for viewport in VIEWPORTS:
        # The page's own policy forbids injected scripts, as it should: this context lets axe in.
        context = await browser.new_context(viewport=VIEWPORTS[viewport], bypass_csp=True)  # type: ignore[arg-type]
        await context.add_cookies([{"name": UI_COOKIE, "value": ui_session_value(TOKEN), "url": server.base + "/ui"}])
        page = await context.new_page()
        for path in paths:
            await page.goto(server.base + path)
            await page.add_script_tag(path=str(AXE))
            report = await page.evaluate(AXE_RUN)
            assert report["passes"] > 10, report  # axe ran its rules on this page
            violations = report["violations"]
            assert violations == [], f"{path} at {viewport}: {violations}"
        await context.close()
