"""The Crawl4AI runner (tools/crawl4ai_runner) as a real subprocess, and Crawl4AIFetcher against it.

The runner lives in its own venv (.tools/crawl4ai-venv, `make crawl4ai-runner`); without it these tests skip,
except under CI, where they fail. Browser-mode tests also need Debian's chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import ExtractError, FetchError, InvalidInputError
from mcp_web_ingest.ingest.auth_profiles import RequestAuth
from mcp_web_ingest.ingest.crawl4ai_client import Crawl4AIFetcher
from mcp_web_ingest.ingest.extract import extract_page
from mcp_web_ingest.ingest.fetch import HttpFetcher
from mcp_web_ingest.ingest.urls import Credentials
from mcp_web_ingest.models import FetchedPage

from .conftest import free_port
from .formats_site import BASIC, PROBES, SESSION_COOKIE

ROOT = Path(__file__).resolve().parents[1]
RUNNER_PYTHON = ROOT / ".tools" / "crawl4ai-venv" / "bin" / "python"
CHROMIUM = Path("/usr/bin/chromium")


class RunnerProcess:
    """`python -m tools.crawl4ai_runner` from the runner venv on 127.0.0.1, with its log in a file."""

    def __init__(self, tmp: Path, *, simple: bool) -> None:
        self.port = free_port()
        self.log_path = tmp / "runner.log"
        self.env = {
            **os.environ,
            "USE_SIMPLE_CRAWLER": "true" if simple else "false",
            "CRAWL4_AI_BASE_DIRECTORY": str(tmp / "crawl4ai"),
            "CRAWL4AI_NO_CLOUD_NOTICE": "1",
            "MAX_CONCURRENCY": "4",
            # The policy of requests that send none: the test site is on 127.0.0.1 (the client always sends one).
            "ALLOW_PRIVATE_NETWORKS": "true",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the runner."""
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        """Start the runner process (returns at once; see wait_ready)."""
        cmd = [str(RUNNER_PYTHON), "-m", "tools.crawl4ai_runner", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    async def wait_ready(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait for GET /health to answer 200; returns the health body, fails with the log if the process exits."""
        assert self.proc is not None
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while asyncio.get_running_loop().time() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"crawl4ai runner exited: {self.log_tail()}")
                try:
                    async with session.get(self.url + "/health") as resp:
                        if resp.status == 200:
                            return await resp.json()
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"crawl4ai runner not ready after {timeout_s} s: {self.log_tail()}")

    def log_tail(self) -> str:
        """The end of the runner's log."""
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send sig (SIGTERM: clean shutdown, SIGKILL: a crash) and wait for the process to end."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _require_runner_venv() -> None:
    if not RUNNER_PYTHON.exists():
        reason = f"{RUNNER_PYTHON} is missing: run `make crawl4ai-runner` to create the Crawl4AI runner venv"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


async def _started(tmp: Path, *, simple: bool) -> RunnerProcess:
    runner = RunnerProcess(tmp, simple=simple)
    runner.spawn()
    try:
        await runner.wait_ready()
    except BaseException:
        runner.stop(signal.SIGKILL)
        raise
    return runner


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def http_runner(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunnerProcess]:
    """The runner with USE_SIMPLE_CRAWLER=true (crawl4ai's HTTP-only strategy)."""
    _require_runner_venv()
    runner = await _started(tmp_path_factory.mktemp("crawl4ai-http"), simple=True)
    yield runner
    runner.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser_runner(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunnerProcess]:
    """The runner in browser mode: Debian's Chromium attached over CDP."""
    _require_runner_venv()
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat at fixture setup
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser-mode tests need it")
    runner = await _started(tmp_path_factory.mktemp("crawl4ai-browser"), simple=False)
    yield runner
    runner.stop()
    assert runner.proc is not None and runner.proc.returncode == 0, runner.log_tail()


class RecordingFetcher:
    """A fallback Fetcher that records the URLs it was asked for and delegates to HttpFetcher."""

    def __init__(self, settings: Settings) -> None:
        self.inner = HttpFetcher(settings)
        self.calls: list[str] = []

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None, auth: RequestAuth | None = None
    ) -> FetchedPage:
        """Record, then fetch with the built-in fetcher."""
        self.calls.append(url)
        return await self.inner.fetch(url, auth=auth)

    def health(self) -> None:
        """Nothing to report."""
        return None

    async def aclose(self) -> None:
        """Close the inner fetcher."""
        await self.inner.aclose()


Client = tuple[Crawl4AIFetcher, RecordingFetcher, list[str]]


@pytest.fixture
async def make_client(settings: Settings) -> AsyncIterator[Callable[[str], Client]]:
    """Builds Crawl4AIFetchers for a runner URL, with a recording fallback and an outcome list; closes them."""
    made: list[Crawl4AIFetcher] = []

    def make(url: str) -> Client:
        fallback = RecordingFetcher(settings)
        outcomes: list[str] = []
        client = Crawl4AIFetcher(settings.model_copy(update={"crawl4ai_url": url}), fallback, outcomes.append)
        made.append(client)
        return client, fallback, outcomes

    yield make
    for client in made:
        await client.aclose()


async def _post(url: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(url + "/crawl", json=body) as resp:
        return resp.status, await resp.json()


async def test_runner_contract(http_runner: RunnerProcess, site_url: str) -> None:
    """/health, a page, a target 404 (reported, not an error), an unreachable target (502) and bad requests (400)."""
    async with aiohttp.ClientSession() as s, s.get(http_runner.url + "/health") as resp:
        health = await resp.json()
    assert health == {**health, "status": "ok", "strategy": "http", "browser": None, "crawl4ai_version": "0.9.5"}

    status, page = await _post(http_runner.url, {"url": site_url + "/redirect", "timeout_s": 10})
    assert status == 200
    assert page["status_code"] == 200 and page["strategy"] == "http"
    assert page["final_url"] == site_url + "/guide/install.html"
    assert page["content_type"].startswith("text/html") and "<h1" in page["html"]
    assert page["elapsed_s"] >= 0 and isinstance(page["headers"], dict)

    status, missing = await _post(http_runner.url, {"url": site_url + "/status/404"})
    assert (status, missing["status_code"]) == (200, 404)

    status, err = await _post(http_runner.url, {"url": f"http://127.0.0.1:{free_port()}/x"})
    assert status == 502 and err["error_type"] == "target_unreachable" and "Connect" in err["error"]

    for body in ({"url": "ftp://example.com/"}, {"nourl": 1}, {"url": site_url, "timeout_s": -1}, ["x"]):
        status, err = await _post(http_runner.url, body)
        assert status == 400 and err["error_type"] == "bad_request", body
    async with aiohttp.ClientSession() as s, s.post(http_runner.url + "/crawl", data=b"{not json") as resp:
        assert resp.status == 400 and (await resp.json())["error_type"] == "bad_request"


async def test_client_matches_direct_fetch(
    http_runner: RunnerProcess, site_url: str, settings: Settings, make_client: Callable[[str], Client]
) -> None:
    """A page through the runner extracts to the same title and sections as the built-in fetcher's copy."""
    client, fallback, outcomes = make_client(http_runner.url)
    url = site_url + "/guide/install.html"
    via_runner = await client.fetch(url)
    async with HttpFetcher(settings) as direct:
        plain = await direct.fetch(url)
    assert (via_runner.status, via_runner.content_type, via_runner.final_url) == (200, "text/html", url)
    a, b = extract_page(via_runner.text, url), extract_page(plain.text, url)
    assert a.title == b.title and a.title
    assert [(s.heading, s.path, s.markdown) for s in a.sections] == [
        (s.heading, s.path, s.markdown) for s in b.sections
    ]
    assert outcomes == ["success"] and fallback.calls == []
    health = client.health()
    assert health["status"] == "ok" and health["strategy"] == "http" and health["counters"]["success"] == 1


async def test_target_errors_match_http_fetcher(
    http_runner: RunnerProcess, site_url: str, settings: Settings, make_client: Callable[[str], Client]
) -> None:
    """A real 404 and an image raise HttpFetcher's own errors, without falling back."""
    client, fallback, outcomes = make_client(http_runner.url)
    async with HttpFetcher(settings) as direct:
        for path in ("/status/404", "/crawl/static/logo.png", "/crawl/static/style.css"):
            with pytest.raises(FetchError) as via_runner:
                await client.fetch(site_url + path)
            with pytest.raises(FetchError) as plain:
                await direct.fetch(site_url + path)
            assert type(via_runner.value) is type(plain.value)
            assert (str(via_runner.value), via_runner.value.status) == (str(plain.value), plain.value.status)
    assert outcomes == ["failed"] * 3 and fallback.calls == []
    assert client.health()["status"] == "ok"  # the runner answered: the target was at fault


async def test_documents_that_are_not_html_are_read_directly(
    http_runner: RunnerProcess, site_url: str, make_client: Callable[[str], Client]
) -> None:
    """Rendering is for HTML: a PDF or a text file the runner reaches is fetched as it is by the built-in fetcher."""
    client, fallback, outcomes = make_client(http_runner.url)
    pdf = await client.fetch(site_url + "/doc.pdf")
    text = await client.fetch(site_url + "/plain.txt")
    assert (pdf.format, text.format) == ("pdf", "text") and pdf.body.startswith(b"%PDF-")
    assert fallback.calls == [site_url + "/doc.pdf", site_url + "/plain.txt"]
    assert outcomes == ["success", "success"] and client.health()["status"] == "ok"


async def test_transient_target_status_goes_to_fallback(
    http_runner: RunnerProcess, site_url: str, make_client: Callable[[str], Client]
) -> None:
    """A 5xx from the target is left to the built-in fetcher, whose retries get the page."""
    client, fallback, outcomes = make_client(http_runner.url)
    page = await client.fetch(site_url + "/flaky?key=c4a&fail=1")
    assert "plonkmeister" in page.text and fallback.calls == [site_url + "/flaky?key=c4a&fail=1"]
    assert outcomes == ["fallback"] and client.health()["status"] == "ok"


async def test_killed_runner_falls_back(tmp_path: Path, site_url: str, make_client: Callable[[str], Client]) -> None:
    """After SIGKILL the fallback serves every page, outcomes say so and health is degraded; the breaker opens."""
    _require_runner_venv()
    runner = await _started(tmp_path, simple=True)
    try:
        client, fallback, outcomes = make_client(runner.url)
        url = site_url + "/guide/install.html"
        assert (await client.fetch(url)).status == 200
    finally:
        runner.stop(signal.SIGKILL)
    for _ in range(4):  # the 4th is refused by the open circuit without touching the network
        page = await client.fetch(url)
        assert page.status == 200 and "Froobnicator" in page.text
    assert outcomes == ["success"] + ["fallback"] * 4 and len(fallback.calls) == 4
    health = client.health()
    assert health["status"] == "degraded" and health["counters"] == {"success": 1, "fallback": 4, "failed": 0}
    assert health["breaker"]["state"] == "open" and "ClientConnectorError" in health["breaker"]["last_error"]
    assert "circuit open" in health["last_error"]
    with pytest.raises(FetchError) as err:  # the fallback's own error is what the caller sees
        await client.fetch(site_url + "/status/404")
    assert err.value.status == 404 and outcomes[-1] == "failed"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _fake_runner(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/crawl", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.mark.parametrize(
    ("answer", "runner_fault"),
    [
        (lambda: web.Response(text="<html>proxy error</html>", status=200), True),
        (lambda: web.json_response({"html": 3, "status_code": "200"}), True),
        (lambda: web.json_response({"error": "boom", "error_type": "crawler_error"}, status=500), True),
        (lambda: web.json_response({"error": "refused", "error_type": "target_unreachable"}, status=502), False),
    ],
    ids=["not-json", "wrong-shape", "runner-500", "target-unreachable"],
)
async def test_unusable_answers_fall_back(
    answer: Callable[[], web.Response],
    runner_fault: bool,
    site_url: str,
    make_client: Callable[[str], Client],
) -> None:
    """Garbage and runner errors fall back; only the runner's own faults degrade its health."""

    async def handler(request: web.Request) -> web.Response:
        return answer()

    fake, url = await _fake_runner(handler)
    try:
        client, fallback, outcomes = make_client(url)
        page = await client.fetch(site_url + "/guide/install.html")
    finally:
        await fake.cleanup()
    assert page.status == 200 and outcomes == ["fallback"] and len(fallback.calls) == 1
    assert client.health()["status"] == ("degraded" if runner_fault else "ok")
    assert client.health()["last_error"]


def _answer(html: str, content_type: str | None) -> dict[str, Any]:
    return {"url": "u", "final_url": "", "status_code": 200, "html": html, "content_type": content_type}


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (_answer("\x00\x01\x02 binary", None), r"named as html but its body is binary data"),
        (_answer("%PDF-1.4 1 0 obj", "text/html; charset=utf-8"), "body is binary data"),
        (_answer("<p>" + "x" * 3 * 1024 * 1024, "text/html"), "larger than the limit"),
        (_answer("<!DOCTYPE html><h1>Unlabelled</h1>", None), None),
    ],
    ids=["unlabelled-binary", "binary", "too-large", "unlabelled-html"],
)
async def test_runner_pages_get_http_fetcher_rules(
    answer: dict[str, Any], error: str | None, site_url: str, make_client: Callable[[str], Client]
) -> None:
    """Content sniffing and the size cap apply to what the runner returns, with HttpFetcher's messages."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(answer)

    fake, url = await _fake_runner(handler)
    try:
        client, fallback, outcomes = make_client(url)
        if error is None:
            page = await client.fetch(site_url + "/x.html")
            assert (page.content_type, page.final_url, outcomes) == ("text/html", site_url + "/x.html", ["success"])
        else:
            with pytest.raises(FetchError, match=error):
                await client.fetch(site_url + "/x.html")
            assert outcomes == ["failed"] and fallback.calls == []
    finally:
        await fake.cleanup()


async def test_client_refuses_bad_input(settings: Settings) -> None:
    """No CRAWL4AI_URL is a programming error; a non-http URL is refused before any request."""
    with pytest.raises(ValueError, match="CRAWL4AI_URL"):
        Crawl4AIFetcher(settings, HttpFetcher(settings))
    client = Crawl4AIFetcher(settings.model_copy(update={"crawl4ai_url": "http://127.0.0.1:9"}), HttpFetcher(settings))
    with pytest.raises(InvalidInputError):
        await client.fetch("file:///etc/passwd")
    assert client.counters == {"success": 0, "fallback": 0, "failed": 0}
    await client.aclose()


async def _js_page(runner: RunnerProcess, site_url: str, make_client: Callable[[str], Client]) -> FetchedPage:
    client, _, outcomes = make_client(runner.url)
    page = await client.fetch(site_url + "/js-rendered.html")
    assert outcomes == ["success"]
    return page


async def test_js_page_not_rendered_over_http(
    http_runner: RunnerProcess, site_url: str, make_client: Callable[[str], Client]
) -> None:
    """The HTTP-only strategy returns the page as served: an empty body plus a script, so nothing to extract."""
    page = await _js_page(http_runner, site_url, make_client)
    assert "<h1>Rendered by JS</h1>" in page.text  # only inside the script's string literal
    with pytest.raises(ExtractError, match="rendered by JavaScript"):
        extract_page(page.text, page.url)


async def test_js_page_rendered_by_browser(
    browser_runner: RunnerProcess, site_url: str, make_client: Callable[[str], Client]
) -> None:
    """In browser mode Chromium runs the script, so the written heading and paragraph are the content."""
    async with aiohttp.ClientSession() as s, s.get(browser_runner.url + "/health") as resp:
        health = await resp.json()
    assert health["strategy"] == "browser" and health["browser"]["alive"] and "Chrome" in health["browser"]["version"]
    page = await _js_page(browser_runner, site_url, make_client)
    extracted = extract_page(page.text, page.url)
    assert extracted.title == "Rendered by JS" and "quasar flux" in extracted.markdown
    assert "<script>" not in page.text  # the DOM after the script ran: body.innerHTML replaced the script too
    status, missing = await _post(browser_runner.url, {"url": site_url + "/status/404"})
    assert (status, missing["status_code"], missing["strategy"]) == (200, 404, "browser")


# --- auth profiles through the runner -----------------------------------------------------------------------------


def _cookie_profile(**extra: Any) -> RequestAuth:
    return RequestAuth(name="wiki", hosts=("127.0.0.1",), cookies=(SESSION_COOKIE,), **extra)


async def test_cookie_profile_renders_a_private_page_in_the_browser(
    browser_runner: RunnerProcess, site_url: str, make_client: Callable[[str], Client]
) -> None:
    """The runner's browser gets the cookie for the page's host only: the page renders, another host never sees it."""
    client, fallback, outcomes = make_client(browser_runner.url)
    PROBES.clear()
    page = await client.fetch(site_url + "/formats/private/cookie.html", auth=_cookie_profile())
    assert "9,100 grommets for the browser team" in page.text  # the script ran: Chromium rendered it
    assert fallback.calls == [] and outcomes == ["success"]
    assert PROBES and all(p is None or SESSION_COOKIE[1] not in p for p in PROBES)  # localhost got no cookie
    with pytest.raises(FetchError, match="HTTP 401"):  # no profile: the cookie was cleared with its request
        await client.fetch(site_url + "/formats/private/cookie.html")


async def test_header_and_basic_profiles_stay_with_the_built_in_fetcher(
    browser_runner: RunnerProcess, site_url: str, make_client: Callable[[str], Client]
) -> None:
    """A browser would send headers on to every host a redirect or image leads to: such pages skip the runner."""
    client, fallback, _ = make_client(browser_runner.url)
    header_profile = _cookie_profile(headers=(("X-Wiki-Client", "test"),))
    basic = RequestAuth(name="basic", hosts=("127.0.0.1",), basic=Credentials(*BASIC))
    await client.fetch(site_url + "/formats/private/cookie.html", auth=header_profile)
    page = await client.fetch(site_url + "/formats/private/basic.md", auth=basic)
    assert "7,700 grommets" in page.text
    assert fallback.calls == [site_url + "/formats/private/cookie.html", site_url + "/formats/private/basic.md"]


async def test_http_mode_runner_hands_cookies_back(
    http_runner: RunnerProcess, site_url: str, make_client: Callable[[str], Client]
) -> None:
    """Plain HTTP cannot keep a cookie to one host across redirects: the runner refuses, the fallback fetches."""
    status, answer = await _post(
        http_runner.url, {"url": site_url + "/formats/private/cookie.html", "cookies": [{"name": "a", "value": "b"}]}
    )
    assert (status, answer["error_type"]) == (422, "cookies_unsupported")
    client, fallback, outcomes = make_client(http_runner.url)
    page = await client.fetch(site_url + "/formats/private/cookie.html", auth=_cookie_profile())
    assert "Private wiki" in page.text and fallback.calls == [site_url + "/formats/private/cookie.html"]
    assert outcomes == ["success"] and client.health()["status"] == "ok"
