"""Documents that are not HTML, end to end over MCP: each format is indexed from 127.0.0.1 and found by `search`.

Markdown, plain text, reStructuredText, a real PDF with an outline, a notebook, an llms.txt pointing at .md pages,
an llms-full.txt, a page with a Markdown twin; broken inputs give clear errors and store nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from mcp_web_ingest.runtime import Runtime

from .mcp_helpers import call, connect

pytestmark = pytest.mark.both_backends


async def index(client: Client, **args: Any) -> dict[str, Any]:
    """index_web_page's result for one page."""
    return (await call(client, "index_web_page", **args))["page"]


async def fails(client: Client, tool: str, **args: Any) -> str:
    res = await client.call_tool(tool, args)
    assert res.is_error, res.structured_content
    return " ".join(getattr(c, "text", "") for c in res.content)


async def top_hit(client: Client, query: str, **args: Any) -> dict[str, Any]:
    found = await call(client, "search", query=query, **args)
    assert found["results"], f"nothing found for {query!r}"
    return found["results"][0]


async def page_count(runtime: Runtime) -> int:
    return (await runtime.store.catalog.counts())["pages"]


@pytest.mark.parametrize(
    ("path", "fmt", "title", "query", "anchor", "evidence"),
    [
        (
            "docs/guide.md",
            "markdown",
            "Zorbulator configuration guide",
            "how long are zorbulator flux snapshots kept before compaction",
            "retention-windows",
            "retention_days = 14",
        ),
        (
            "docs/changelog.txt",
            "text",
            "Quibbleflux release notes",
            "quibbleflux error QF-1187 wobble scheduler",
            None,
            "cooperative scheduler",
        ),
        (
            "docs/tutorial.rst",
            "rst",
            "Snarfle pipeline basics",
            "what happens when a snarfle sink is slower than its source",
            "backpressure",
            "max_pending",
        ),
        (
            "docs/analysis.ipynb",
            "notebook",
            "Gribble yield analysis",
            "gribble yield per hectare by season",
            "Seasonal-yield-per-hectare",
            "yield_per_hectare",
        ),
    ],
    ids=["markdown", "text", "rst", "notebook"],
)
async def test_each_text_format_is_found_first_with_its_deep_link(
    clean: Runtime, site_url: str, path: str, fmt: str, title: str, query: str, anchor: str | None, evidence: str
) -> None:
    url = f"{site_url}/formats/{path}"
    async with connect(clean) as client:
        indexed = await index(client, url=url)
        hit = await top_hit(client, query)
        page = await call(client, "read_page", url=url)
    assert indexed["title"] == title and indexed["chunks"] >= 1
    assert hit["url"] == url and hit["deep_link"] == (f"{url}#{anchor}" if anchor else url)
    assert evidence in page["markdown"]
    stored = await clean.store.catalog.get_page("default", url)
    assert stored is not None and stored.content_format == fmt and stored.content_url is None


async def test_markdown_keeps_code_whole_and_links_absolute(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/formats/docs/guide.md"
    async with connect(clean) as client:
        await index(client, url=url)
        page = await call(client, "read_page", url=url)
        flux = await call(client, "read_page", url=f"{url}#flux-tuning")
    md = page["markdown"]
    assert "sidebar_position" not in md  # front matter is not content
    assert '```toml\n[retention]\nretention_days = 14\ncompact_at = "03:00"\n```' in md
    assert "```\nzorb tune --flux-gain 1.8 --dry-run\n```" in md  # an indented block becomes a whole fence
    assert f"[deployment notes]({site_url}/formats/docs/deploy.md)" in md
    assert [e["heading"] for e in page["outline"]] == [
        "Zorbulator configuration guide",
        "Retention windows",
        "Tuning the flux capacitor",
        "Limits",
    ]
    assert flux["markdown"].startswith("## Tuning the flux capacitor")  # the explicit {#flux-tuning} id


async def test_notebook_code_cells_are_fenced_and_outputs_skipped(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/formats/docs/analysis.ipynb"
    async with connect(clean) as client:
        await index(client, url=url)
        md = (await call(client, "read_page", url=url))["markdown"]
    assert "```python\nimport pandas as pd\nharvest = pd.read_csv('gribble_harvest.csv')" in md
    assert "OUTPUT-SHOULD-NOT-BE-INDEXED\n" not in md.replace("print('OUTPUT-SHOULD-NOT-BE-INDEXED')", "")


async def test_rst_renders_sphinx_roles_and_code(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/formats/docs/tutorial.rst"
    async with connect(clean) as client:
        await index(client, url=url)
        md = (await call(client, "read_page", url=url))["markdown"]
    assert "`snarfle.filter`" in md and ":func:" not in md
    assert "```python\nimport snarfle\n" in md
    assert "Added in version 2.3" in md


async def test_pdf_pages_and_outline(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/formats/manual.pdf"
    async with connect(clean) as client:
        indexed = await index(client, url=url)
        hit = await top_hit(client, "glob patterns with a weight to detect the type of a file from its name")
        page = await call(client, "read_page", url=url, max_chars=2000)
    assert indexed["chunks"] > 5
    assert hit["url"] == url and hit["deep_link"].startswith(f"{url}#page=")
    anchors = [e["deep_link"].rsplit("#", 1)[-1] for e in page["outline"]]
    assert anchors and all(a.startswith("page=") for a in anchors)
    assert len(page["outline"]) > 10  # headings from the PDF's outline, not one per page


async def test_llms_txt_crawl_reads_markdown_pages(clean: Runtime, site_url: str) -> None:
    start = f"{site_url}/formats/llms.txt"
    async with connect(clean) as client:
        job = (await call(client, "index_web_page", url=start, max_depth=1, max_pages=10, wait_seconds=60))["job"]
        hit = await top_hit(client, "forward the tenant header through nginx")
    assert job["state"] == "done", job
    assert hit["url"] == f"{site_url}/formats/docs/deploy.md"
    assert hit["deep_link"] == f"{site_url}/formats/docs/deploy.md#running-behind-a-reverse-proxy"
    assert await clean.store.catalog.get_page("default", f"{site_url}/formats/docs/guide.md") is not None


async def test_llms_full_txt_is_split_into_its_pages(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/formats/llms-full.txt"
    async with connect(clean) as client:
        indexed = await index(client, url=url)
        upload = await top_hit(client, "how are large blobs uploaded in parts")
        rotated = await top_hit(client, "grace period after an API key rotates")
        own = await call(client, "read_page", url=url)
    uploads, auth = f"{site_url}/formats/sdk/uploads.html", f"{site_url}/formats/sdk/auth.html"
    assert sorted(indexed["carried"]) == [auth, uploads]
    assert upload["url"] == uploads and rotated["url"] == auth
    stored = await clean.store.catalog.get_page("default", uploads)
    assert stored is not None and (stored.content_format, stored.content_url) == ("llms-full", url)
    # A part claiming another origin stays in the file's own page: it must not plant text under that URL.
    assert "must not be stored there" in own["markdown"]
    assert await clean.store.catalog.get_page("default", "https://docs.python.org/3/library/json.html") is None


async def test_a_page_indexed_directly_wins_over_its_llms_full_copy(clean: Runtime, site_url: str) -> None:
    direct = f"{site_url}/formats/twin/page.html"
    # Pretend the file carried this page: store it directly first, then index a file that carries the same URL.
    async with connect(clean) as client:
        await index(client, url=direct)
        before = await clean.store.catalog.get_page("default", direct)
        await index(client, url=f"{site_url}/formats/llms-full.txt")
    after = await clean.store.catalog.get_page("default", direct)
    assert before is not None and after is not None and after.content_hash == before.content_hash


async def test_markdown_twin_is_preferred_and_recorded(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/formats/twin/page.html"
    async with connect(clean) as client:
        indexed = await index(client, url=url)
        hit = await top_hit(client, "how often does a wobbler socket send keepalive frames")
        page = await call(client, "read_page", url=url)
    assert indexed["content_format"] == "markdown" and indexed["content_url"] == f"{site_url}/formats/twin/page.md"
    assert hit["url"] == url and hit["deep_link"] == f"{url}#keepalive-intervals"  # the page's own URL and anchor
    assert "default 15000" in page["markdown"] and "HTML VERSION ONLY" not in page["markdown"]
    assert page["content_format"] == "markdown"


async def test_markdown_twin_can_be_turned_off(clean: Runtime, site_url: str) -> None:
    url = f"{site_url}/formats/twin/page.html"
    clean.settings.prefer_markdown = False  # the indexer reads the flag per page
    try:
        async with connect(clean) as client:
            indexed = await index(client, url=url)
            page = await call(client, "read_page", url=url)
    finally:
        clean.settings.prefer_markdown = True
    assert indexed["content_format"] == "html" and "HTML VERSION ONLY" in page["markdown"]


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("truncated.pdf", "damaged or truncated"),
        ("encrypted.pdf", "encrypted"),
        ("image-only.pdf", "no text layer"),
        ("docs/broken.ipynb", "not a valid Jupyter notebook"),
        ("bad/long-line.txt", "generated data"),
    ],
    ids=["truncated-pdf", "encrypted-pdf", "image-only-pdf", "malformed-notebook", "single-line-text"],
)
async def test_bad_documents_give_clear_errors_and_store_nothing(
    clean: Runtime, site_url: str, path: str, fragment: str
) -> None:
    async with connect(clean) as client:
        message = await fails(client, "index_web_page", url=f"{site_url}/formats/{path}")
    assert fragment in message
    assert await page_count(clean) == 0
