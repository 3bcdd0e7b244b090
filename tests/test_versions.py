"""Documentation versions: read from URLs or given, filtered in search (exact, range, latest, all), listed."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.ingest.versions import (
    clean_label,
    detect_version,
    newest,
    select_versions,
    validate_version_request,
)
from mcp_web_ingest.runtime import Runtime

from .mcp_helpers import call, connect


@pytest.mark.parametrize(
    ("url", "version"),
    [
        ("https://docs.python.org/3.11/library/json.html", "3.11"),
        ("https://docs.example.com/v5/guide/intro", "5"),
        ("https://pkg.readthedocs.io/en/stable/usage.html", "stable"),
        ("https://pkg.readthedocs.io/en/latest/", "latest"),
        ("https://docs.example.com/2.x/api.html", "2.x"),
        ("https://blog.example.com/2024/05/release.html", None),  # a date, not a version
        ("https://docs.example.com/guide/v5.html", None),  # the page name is not a folder
        ("https://docs.example.com/guide/intro.html", None),
        ("https://docs.python.org/3/library/json.html", "3"),  # a bare number at the top of the path
        ("https://book.example.com/chapter/3/section.html", None),  # deeper down: a chapter
        ("https://example.com/guide/dev/tools.html", None),  # a section named dev, not a version
        ("https://docs.djangoproject.com/en/5.0/topics/db/", "5.0"),
    ],
)
def test_detect_version(url: str, version: str | None) -> None:
    assert detect_version(url) == version


def test_labels_order_and_requests() -> None:
    assert newest(["3.9", "3.11", "3.10"]) == "3.11"
    assert newest(["dev", "4.2", "5.0"]) == "5.0" and newest(["5.0", "stable"]) == "stable"
    assert clean_label(" v5.2 ") == "5.2"
    with pytest.raises(InvalidInputError, match="Invalid version"):
        clean_label("5.2; drop table")
    with pytest.raises(InvalidInputError, match="not a valid range"):
        validate_version_request(">=banana")
    labels = {"a": ["1", "2", "next"], "b": []}
    assert select_versions(labels, None) == (("a", "2"),)  # latest of each collection
    assert select_versions(labels, "all") is None
    assert select_versions(labels, "1.x") == (("a", "1"),)
    assert select_versions(labels, ">=1.5") == (("a", "2"),)
    assert select_versions(labels, "7") == ()
    assert select_versions({"a": []}, "7") is None  # nothing labelled: nothing to filter


async def urls(client: Client, **args: Any) -> list[str]:
    found = await call(client, "search", query="how do I open a frobble session", **args)
    return [r["url"] for r in found["results"] if "/versions/" in r["url"]]


@pytest.mark.both_backends
async def test_search_by_version(clean: Runtime, site_url: str) -> None:
    base = f"{site_url}/formats/versions"
    v1, v2, nxt = f"{base}/v1/api.md", f"{base}/v2/api.md", f"{base}/next/api.md"
    async with connect(clean) as client:
        for url in (v1, v2):
            await call(client, "index_web_page", url=url)
        await call(client, "index_web_page", url=nxt, version="3.0rc1")  # given: wins over the URL's "next"
        latest = await urls(client)
        provenance = (await call(client, "search", query="frobble session"))["results"][0]["provenance"]
        one = await urls(client, version="1")
        ranged = await urls(client, version=">=2,<3")
        everything = await urls(client, version="all")
        missing = await call(client, "search", query="frobble session", version="9.9")
        sources = (await call(client, "list_sources"))["sources"]
        await call(client, "index_web_page", url=nxt)  # unchanged, no version given: the given label stays
    assert provenance["version"] == "3.0rc1"
    assert latest == [nxt] and one == [v1] and ranged == [v2] and sorted(everything) == sorted([v1, v2, nxt])
    assert not [r for r in missing["results"] if "/versions/" in r["url"]]
    assert any("no pages are labelled version 9.9" in n for n in missing["notes"])
    assert [s["versions"] for s in sources] == [["3.0rc1", "2", "1"]]
    stored = await clean.store.catalog.get_page("default", nxt)
    assert stored is not None
    async with clean.db.pool.connection() as conn:
        row = await (await conn.execute("SELECT version, version_source FROM pages WHERE url = %s", (nxt,))).fetchone()
    assert row == ("3.0rc1", "given")


@pytest.mark.both_backends
async def test_unlabelled_pages_always_match(clean: Runtime, site_url: str) -> None:
    async with connect(clean) as client:
        await call(client, "index_web_page", url=f"{site_url}/formats/versions/v1/api.md")
        await call(client, "index_web_page", url=f"{site_url}/formats/versions/v2/api.md")
        await call(client, "index_web_page", url=f"{site_url}/formats/docs/guide.md")
        found = await call(client, "search", query="zorbulator retention windows", version="1")
    assert found["results"][0]["url"] == f"{site_url}/formats/docs/guide.md"
