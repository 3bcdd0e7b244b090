"""Portable packs: export a collection to one file, import it elsewhere, search exactly as before; bad packs refused."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest
from mcp_web_ingest.storage.packs import export_pack, import_pack

pytestmark = pytest.mark.both_backends

QUERIES = ("install behind a corporate proxy", "retention windows", "open a frobble session", "froobnicator config")


async def _results(rt: Runtime, collection: str) -> list[list[tuple[str, str | None, float, str]]]:
    out = []
    for query in QUERIES:
        res = await rt.pipeline.search(SearchRequest.create(rt.settings, query, k=5, collection=collection))
        out.append([(h.url, h.anchor, round(h.score, 6), h.text) for h in res.hits])
    return out


async def test_export_then_import_searches_the_same(clean: Runtime, site_url: str, tmp_path: Path) -> None:
    rt, pack = clean, tmp_path / "docs.pack"
    model, dim = rt.embedder.model_name, rt.embedder.dimension
    for path in ("guide/install.html", "guide/config.html", "formats/versions/v2/api.md", "formats/docs/guide.md"):
        await rt.pipeline.index_page(f"{site_url}/{path}", "packsrc", version="2" if "versions" in path else None)
    before = await _results(rt, "packsrc")
    page_before = await rt.store.catalog.get_page("packsrc", f"{site_url}/guide/install.html")
    exported = await export_pack(rt.db, "packsrc", pack, model, dim)
    assert (exported.pages, exported.collection) == (4, "packsrc") and exported.chunks > 4
    assert await rt.store.delete_source("packsrc") == 4
    imported = await import_pack(rt.store, rt.db, pack, model, dim)
    assert (imported.pages, imported.chunks) == (exported.pages, exported.chunks)
    assert await _results(rt, "packsrc") == before
    page_after = await rt.store.catalog.get_page("packsrc", f"{site_url}/guide/install.html")
    assert page_before is not None and page_after is not None
    assert (page_after.content_hash, page_after.crawled_at) == (page_before.content_hash, page_before.crawled_at)
    doc = await rt.store.catalog.read_document(url=f"{site_url}/guide/install.html", collection="packsrc")
    assert doc is not None and not doc.from_chunks  # the sections travelled too
    assert (await rt.store.catalog.version_labels("packsrc")) == {"packsrc": ["2"]}
    # Into another collection, next to the original.
    await import_pack(rt.store, rt.db, pack, model, dim, collection="copy")
    assert [[(u, a, t) for u, a, _, t in r] for r in await _results(rt, "copy")] == [
        [(u, a, t) for u, a, _, t in r] for r in before
    ]


async def test_packs_of_another_model_or_damaged_are_refused(clean: Runtime, site_url: str, tmp_path: Path) -> None:
    rt, pack = clean, tmp_path / "docs.pack"
    model, dim = rt.embedder.model_name, rt.embedder.dimension
    await rt.pipeline.index_page(f"{site_url}/guide/install.html", "packsrc")
    await export_pack(rt.db, "packsrc", pack, model, dim)
    await rt.store.delete_source("packsrc")
    with pytest.raises(InvalidInputError, match="mcp-web-ingest reembed"):
        await import_pack(rt.store, rt.db, pack, "other-model", dim)
    not_a_pack = tmp_path / "x.pack"
    not_a_pack.write_bytes(b"plain text, not gzip")
    with pytest.raises(InvalidInputError, match="not a pack"):
        await import_pack(rt.store, rt.db, not_a_pack, model, dim)
    with gzip.open(pack, "rt", encoding="utf-8") as f:
        header, page = f.readline(), json.loads(f.readline())
    page["chunks"][0].pop("embedding")
    damaged = tmp_path / "damaged.pack"
    with gzip.open(damaged, "wt", encoding="utf-8") as f:
        f.write(header + json.dumps(page) + "\n")
    with pytest.raises(InvalidInputError, match="damaged at line 2"):
        await import_pack(rt.store, rt.db, damaged, model, dim)
    with pytest.raises(InvalidInputError, match="no pages to export"):
        await export_pack(rt.db, "nothing-here", tmp_path / "empty.pack", model, dim)
    assert not (tmp_path / "empty.pack").exists() and not (tmp_path / "empty.pack.part").exists()
    assert (await rt.store.catalog.counts())["pages"] == 0
