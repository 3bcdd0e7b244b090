"""Slow side services: SPLADE, the reranker and Crawl4AI answer after the client's timeout, or drip.

Killed services are covered by tests/test_hybrid.py and tests/test_crawl4ai.py; here the services stay up but are too
slow. They are the project's real runners started with --enable-fault-control (tools/faults.py), so
the SAME process is made slow with POST /_fault and fast again, and GET /_fault counts the requests that reached
it. Each scenario proves: the caller still gets an answer (search without the leg or the rerank, with a note
saying so; the page stored, through the built-in fetcher or without SPLADE postings); health reports the service
with its breaker open; once open, the breaker keeps requests off the slow service (none reaches it, and a call
takes a fraction of what a timed-out one took); and when the service is fast again, everything recovers.

Timing: a call refused by the open breaker must take less than half the client's timeout (it does no I/O), and a
timed-out call at least the timeout; everything else is checked by counting requests, never by absolute durations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import pytest_asyncio
from mcp import Client

from mcp_web_ingest.errors import RerankUnavailable, SparseUnavailable
from mcp_web_ingest.ingest.crawl4ai_client import Crawl4AIFetcher
from mcp_web_ingest.interface.server import create_server
from mcp_web_ingest.runtime import Runtime, RuntimeHolder
from mcp_web_ingest.search.request import SearchRequest
from tools.model_runner.testing import RunnerProcess, build_tiny_models, fault_state, set_fault

from .test_crawl4ai import RunnerProcess as Crawl4AIRunner
from .test_crawl4ai import _require_runner_venv

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

TIMEOUT_S = 1.5  # splade_timeout_s and reranker_timeout_s of the runtime under test
SLOW_S = 4 * TIMEOUT_S  # how late the slow runner answers, or how long it drips its answer
RESET_S = 5.0  # breaker_reset_timeout_s: long enough to observe the open breaker, short enough to wait out
SPARSE, RERANK, CRAWL = "/sparse/batch", "/rerank", "/crawl"
QUERY = "installing behind a proxy"


async def _timed(call: Awaitable[T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await call
    return result, time.perf_counter() - started


async def _timed_failure(call: Awaitable[Any], kind: type[E]) -> tuple[E, float]:
    """The exception of kind that call raises, and how long it took to raise it."""
    started = time.perf_counter()
    with pytest.raises(kind) as caught:
        await call
    return caught.value, time.perf_counter() - started


async def _requests(base_url: str, path: str) -> int:
    """How many requests to path the runner has received (answered or still being delayed)."""
    return int((await fault_state(base_url))["requests"].get(path, 0))


async def _missing_sparse(rt: Runtime) -> int:
    async with rt.db.pool.connection() as conn:
        row = await (await conn.execute("SELECT count(*) FROM chunks WHERE NOT has_sparse")).fetchone()
    assert row is not None
    return int(row[0])


async def _wait_for_probe(*breakers: Any) -> None:
    """Sleep until every breaker's cool-down is over, so the next call is the half-open probe."""
    await asyncio.sleep(max(b.retry_in_s() for b in breakers) + 0.1)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tiny random SPLADE and cross-encoder (real code paths, meaningless scores), built in ~1 s."""
    return build_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def runner(models: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunnerProcess]:
    """The model runner with fault control on, serving /sparse/batch and /rerank; warmed up while fast."""
    env = {
        "MODEL_NAME": str(models[0]),
        "RERANK_MODEL": str(models[1]),
        "DEVICE": "cpu",
        "BATCH_SIZE": "8",
        "ENABLE_FAULT_CONTROL": "true",
    }
    proc = RunnerProcess(env, tmp_path_factory.mktemp("runner") / "runner.log")
    proc.start()
    try:
        await proc.wait_ready()
        # One call of each model while fast, so no slow-path measurement starts with a cold model.
        async with aiohttp.ClientSession() as session:
            for path, body in ((SPARSE, {"texts": ["warm up"]}), (RERANK, {"query": "warm", "texts": ["up"]})):
                async with session.post(proc.url + path, json=body) as resp:
                    assert resp.status == 200, await resp.text()
        yield proc
    finally:
        proc.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def slow_rt(clean: Runtime, runner: RunnerProcess) -> AsyncIterator[Runtime]:
    """A runtime with SPLADE and the reranker on the runner, short timeouts, one attempt, breaker after 2 failures."""
    settings = clean.settings.model_copy(
        update={
            "splade_url": runner.url,
            "reranker_url": runner.url,
            "rerank_initial_k": 20,
            "rerank_final_k": 5,
            "splade_timeout_s": TIMEOUT_S,
            "reranker_timeout_s": TIMEOUT_S,
            "model_service_retries": 1,
            "breaker_failure_threshold": 2,
            "breaker_reset_timeout_s": RESET_S,
        }
    )
    await set_fault(runner.url, reset_counts=True)
    try:
        async with Runtime.open(settings, resume_jobs=False) as rt:
            yield rt
    finally:
        await set_fault(runner.url, reset_counts=True)


async def test_slow_splade_skips_the_leg_stores_pages_and_recovers(
    slow_rt: Runtime, runner: RunnerProcess, site_url: str
) -> None:
    """/sparse/batch answers after the timeout: search without SPLADE, pages without postings, then back-filled."""
    rt, sparse = slow_rt, slow_rt.sparse
    assert sparse is not None
    await rt.pipeline.index_page(f"{site_url}/guide/install.html")
    assert await _missing_sparse(rt) == 0
    await set_fault(runner.url, delay_s=SLOW_S, paths=[SPARSE])

    # A search and an indexing at once: two SPLADE timeouts, which open the breaker (threshold 2).
    (res, slow_s), out = await asyncio.gather(
        _timed(rt.pipeline.search(SearchRequest.create(rt.settings, QUERY))),
        rt.pipeline.index_page(f"{site_url}/guide/config.html"),
    )
    # The search answers without the SPLADE leg and says why; the (fast) reranker still reranks.
    assert res.hits and res.legs_used == ("dense", "lexical") and res.reranked
    assert [n for n in res.notes if n.startswith("SPLADE leg skipped") and "Timeout" in n], res.notes
    assert not [n for n in res.notes if "rerank" in n]
    assert slow_s >= TIMEOUT_S  # it did wait for the slow service, up to its timeout
    # The page is stored, without SPLADE postings.
    assert out.chunk_count > 0 and await _missing_sparse(rt) == out.chunk_count
    assert sparse.breaker.state == "open"

    health = await rt.health()
    assert health["status"] == "degraded"
    splade = health["components"]["splade"]
    assert splade["status"] == "error" and splade["breaker"]["state"] == "open"
    assert splade["breaker"]["consecutive_failures"] == 2 and "Timeout" in splade["breaker"]["last_error"]
    assert health["components"]["reranker"]["status"] == "ok"

    # While open, a SPLADE call is refused at once, without I/O: nothing reaches the slow service...
    sent = await _requests(runner.url, SPARSE)
    refused, open_s = await _timed_failure(sparse.encode([QUERY], "query"), SparseUnavailable)
    assert refused.short_circuited and "circuit open" in str(refused)
    assert open_s < TIMEOUT_S / 2, (open_s, TIMEOUT_S)
    # ...and search and indexing go on without SPLADE.
    res = await rt.pipeline.search(SearchRequest.create(rt.settings, QUERY))
    assert res.hits and res.legs_used == ("dense", "lexical") and res.reranked
    assert [n for n in res.notes if "circuit open" in n], res.notes
    faq = await rt.pipeline.index_page(f"{site_url}/crawl/faq.html")
    assert faq.chunk_count > 0
    assert await _requests(runner.url, SPARSE) == sent
    metrics = rt.metrics.render().decode()
    assert 'splade_requests_total{outcome="failed"} 2.0' in metrics
    assert 'splade_requests_total{outcome="short_circuited"} 3.0' in metrics

    # Fast again: after the cool-down the probe succeeds, the back-fill completes the postings, search uses SPLADE.
    await set_fault(runner.url)
    await _wait_for_probe(sparse.breaker)
    assert await rt.pipeline.backfill_sparse() == out.chunk_count + faq.chunk_count  # type: ignore[attr-defined]
    assert await _missing_sparse(rt) == 0
    res = await rt.pipeline.search(SearchRequest.create(rt.settings, QUERY))
    assert res.legs_used == ("dense", "lexical", "sparse") and res.reranked and not res.notes
    assert (await rt.health())["status"] == "ok"


async def test_dripping_reranker_keeps_the_fused_order_and_recovers(
    slow_rt: Runtime, runner: RunnerProcess, site_url: str
) -> None:
    """/rerank sends its headers at once and drips the body past the timeout: results keep the fused order."""
    rt, reranker = slow_rt, slow_rt.reranker
    assert reranker is not None
    for page in ("guide/install.html", "guide/config.html"):  # two pages: one page gives at most two results
        await rt.pipeline.index_page(f"{site_url}/{page}")
    fused = await rt.pipeline.search(SearchRequest.create(rt.settings, QUERY, rerank=False))
    assert len(fused.hits) > 1
    # Headers at once, then the body a few bytes at a time: connect and first-byte succeed, the answer never ends.
    await set_fault(runner.url, drip_s=SLOW_S, paths=[RERANK])

    # Two searches at once: two rerank timeouts, which open the breaker (threshold 2).
    timed_out = await asyncio.gather(
        *(_timed(rt.pipeline.search(SearchRequest.create(rt.settings, QUERY))) for _ in range(2))
    )
    for res, _ in timed_out:
        assert res.legs_used == ("dense", "lexical", "sparse") and not res.reranked
        assert [h.chunk_id for h in res.hits] == [h.chunk_id for h in fused.hits]  # the fused order, kept
        assert all(h.rerank_score is None for h in res.hits)
        assert [n for n in res.notes if n.startswith("reranking skipped, fused order kept") and "Timeout" in n]
    slow_s = min(elapsed for _, elapsed in timed_out)
    assert slow_s >= TIMEOUT_S

    health = await rt.health()
    assert health["status"] == "degraded"
    component = health["components"]["reranker"]
    assert component["status"] == "error" and component["breaker"]["state"] == "open"
    assert health["components"]["splade"]["status"] == "ok"

    # While open, a rerank call is refused at once and search keeps the fused order without asking the service.
    sent = await _requests(runner.url, RERANK)
    refused, open_s = await _timed_failure(reranker.rerank(QUERY, ["a quick fox"]), RerankUnavailable)
    assert refused.short_circuited and open_s < TIMEOUT_S / 2, (open_s, TIMEOUT_S)
    res = await rt.pipeline.search(SearchRequest.create(rt.settings, QUERY))
    assert not res.reranked and [h.chunk_id for h in res.hits] == [h.chunk_id for h in fused.hits]
    assert [n for n in res.notes if "circuit open" in n], res.notes
    assert await _requests(runner.url, RERANK) == sent
    assert 'rerank_requests_total{outcome="short_circuited"} 2.0' in rt.metrics.render().decode()

    await set_fault(runner.url)
    await _wait_for_probe(reranker.breaker)
    res = await rt.pipeline.search(SearchRequest.create(rt.settings, QUERY))
    assert res.reranked and all(h.rerank_score is not None for h in res.hits) and not res.notes
    assert await _requests(runner.url, RERANK) == sent + 1
    assert (await rt.health())["status"] == "ok"


async def test_mcp_tools_answer_while_both_model_services_hang(
    slow_rt: Runtime, runner: RunnerProcess, site_url: str
) -> None:
    """Through the MCP search and health tools: no error, the notes and the degraded state reach the client."""
    await slow_rt.pipeline.index_page(f"{site_url}/guide/install.html")
    await set_fault(runner.url, delay_s=SLOW_S)  # every model route; /health itself stays quick
    server = create_server(slow_rt.settings, RuntimeHolder(slow_rt.settings, slow_rt))
    async with Client(server, mode="legacy") as client:  # type: ignore[arg-type]
        # Two searches at once: two timeouts of each service, which open both breakers.
        results = await asyncio.gather(*(client.call_tool("search", {"query": QUERY}) for _ in range(2)))
        for result in results:
            assert not result.is_error and result.structured_content is not None
            out = result.structured_content
            assert out["results"] and out["legs_used"] == ["dense", "lexical"] and out["reranked"] is False
            assert [n for n in out["notes"] if n.startswith("SPLADE leg skipped")]
            assert [n for n in out["notes"] if n.startswith("reranking skipped")]

        health = await client.call_tool("health", {})
        assert not health.is_error and health.structured_content is not None
        report = health.structured_content
        assert report["status"] == "degraded"
        for name in ("splade", "reranker"):
            assert report["components"][name]["status"] == "error"
            assert report["components"][name]["breaker"]["state"] == "open"

        sent = await _requests(runner.url, SPARSE), await _requests(runner.url, RERANK)
        result = await client.call_tool("search", {"query": QUERY})
        assert result.structured_content is not None
        out = result.structured_content
        assert out["results"] and sum("circuit open" in n for n in out["notes"]) == 2  # SPLADE's and the reranker's
        assert (await _requests(runner.url, SPARSE), await _requests(runner.url, RERANK)) == sent

        await set_fault(runner.url)
        await _wait_for_probe(slow_rt.sparse.breaker, slow_rt.reranker.breaker)  # type: ignore[union-attr]
        result = await client.call_tool("search", {"query": QUERY})
        assert result.structured_content is not None
        out = result.structured_content
        assert out["legs_used"] == ["dense", "lexical", "sparse"] and out["reranked"] is True and not out["notes"]
        health = await client.call_tool("health", {})
        assert health.structured_content is not None and health.structured_content["status"] == "ok"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def crawl4ai_runner(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Crawl4AIRunner]:
    """The Crawl4AI runner (HTTP mode, its own venv) with fault control on."""
    _require_runner_venv()
    proc = Crawl4AIRunner(tmp_path_factory.mktemp("crawl4ai-slow"), simple=True)
    proc.env["ENABLE_FAULT_CONTROL"] = "true"
    proc.spawn()
    try:
        await proc.wait_ready()
        yield proc
    finally:
        proc.stop()


async def test_slow_crawl4ai_falls_back_opens_the_breaker_and_recovers(
    clean: Runtime, crawl4ai_runner: Crawl4AIRunner, site_url: str
) -> None:
    """Pages are still indexed (by the built-in fetcher) while the runner hangs; it is used again once fast."""
    url = crawl4ai_runner.url
    # CRAWL4AI_TIMEOUT_S bounds the wait for the runner; the breaker takes BREAKER_* like the model clients.
    client_timeout_s = 3.0
    settings = clean.settings.model_copy(
        update={
            "crawl4ai_url": url,
            "crawl4ai_timeout_s": client_timeout_s,
            "breaker_failure_threshold": 3,
            "breaker_reset_timeout_s": RESET_S,
        }
    )
    async with Runtime.open(settings, resume_jobs=False) as rt:
        fetcher = rt.fetcher
        assert isinstance(fetcher, Crawl4AIFetcher)
        await rt.pipeline.index_page(f"{site_url}/guide/install.html")
        assert fetcher.counters == {"success": 1, "fallback": 0, "failed": 0}

        await set_fault(url, delay_s=2 * client_timeout_s, paths=[CRAWL], reset_counts=True)
        try:
            # The breaker opens after BREAKER_FAILURE_THRESHOLD (3) runner failures: time out 3 pages at once.
            pages = [f"{site_url}/guide/config.html", f"{site_url}/crawl/faq.html", f"{site_url}/crawl/usage.html"]
            outs, slow_s = await _timed(asyncio.gather(*(rt.pipeline.index_page(p) for p in pages)))
            assert all(o.chunk_count > 0 for o in outs)  # stored, through the built-in fetcher
            assert fetcher.counters == {"success": 1, "fallback": 3, "failed": 0}
            assert slow_s >= client_timeout_s

            health = await rt.health()
            assert health["status"] == "degraded"
            component = health["components"]["crawl4ai"]
            assert component["status"] == "degraded" and component["breaker"]["state"] == "open"
            assert "Timeout" in component["breaker"]["last_error"]

            # While open, fetches go straight to the built-in fetcher: no runner request, no waiting for it.
            sent = await _requests(url, CRAWL)
            assert sent == 3
            page, open_s = await _timed(fetcher.fetch(f"{site_url}/crawl/changelog.html"))
            assert page.status == 200 and open_s < client_timeout_s / 2, (open_s, client_timeout_s)
            out = await rt.pipeline.index_page(f"{site_url}/crawl/changelog.html")
            assert out.chunk_count > 0 and fetcher.counters["fallback"] == 5
            assert await _requests(url, CRAWL) == sent
            assert 'web_crawl4ai_fetches_total{outcome="fallback"} 5.0' in rt.metrics.render().decode()
        finally:
            await set_fault(url)

        # Fast again: after BREAKER_RESET_TIMEOUT_S the next fetch is the probe.
        await _wait_for_probe(fetcher.breaker)
        out = await rt.pipeline.index_page(f"{site_url}/crawl/install.html")
        assert out.chunk_count > 0 and fetcher.counters["success"] == 2
        assert await _requests(url, CRAWL) == sent + 1
        health = await rt.health()
        assert health["status"] == "ok" and health["components"]["crawl4ai"]["status"] == "ok"
