"""Embedders: the local MiniLM and the OpenAI-compatible HTTP client against a real local endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.batching import DOCUMENT_PRIORITY, DOCUMENT_SLICE, QUERY_PRIORITY, PriorityLane
from mcp_web_ingest.encoders.dense import OpenAIEmbedder, ThreadedLocalEmbedder, resolve_local_model_dir
from mcp_web_ingest.errors import ConfigError, EmbeddingError
from mcp_web_ingest.runtime import Runtime, make_embedder
from mcp_web_ingest.search.request import SearchRequest

from .openai_compat import Behaviour, serve


def _settings(tmp_path: Path, **kw: object) -> Settings:
    kw.setdefault("allow_private_networks", True)  # local endpoints on 127.0.0.1
    return Settings(_env_file=None, data_dir=tmp_path, **kw)  # type: ignore[call-arg]


async def test_local_embedder_vectors_are_normalised_and_context_sensitive(runtime: Runtime) -> None:
    emb = runtime.embedder
    assert isinstance(emb, ThreadedLocalEmbedder) and emb.dimension == 384
    a, b, c = await emb.embed_documents(["install with pip", "installing using pip", "the weather in Lisbon"])
    assert a.shape == (384,) and abs(float(np.linalg.norm(a)) - 1) < 1e-5
    assert float(a @ b) > float(a @ c) + 0.2
    assert await emb.embed_documents([]) == []
    assert (await emb.health())["status"] == "ok"


QUERIES = [
    "how do I install it",
    "checksum mismatch after download",
    "configure a corporate proxy behind a firewall with a self-signed certificate",
    "x",
    "retention and compaction of snapshots",
    "pathlib glob",
    "what is the file format of the records and how are they versioned across releases",
    "upgrade",
]


async def test_concurrent_queries_share_one_model_call_and_match_sequential(runtime: Runtime) -> None:
    emb = runtime.embedder
    assert isinstance(emb, ThreadedLocalEmbedder)
    batcher = emb.queries
    sequential = [await emb.embed_query(q) for q in QUERIES]  # one at a time: one model call each
    batches, items = batcher.batches, batcher.items
    concurrent = await asyncio.gather(*(emb.embed_query(q) for q in QUERIES))
    assert (batcher.batches - batches, batcher.items - items) == (1, len(QUERIES))
    for one, batched in zip(sequential, concurrent, strict=True):
        assert batched.shape == (384,) and np.allclose(one, batched, atol=1e-5)
    docs = await emb.embed_documents(QUERIES)  # the same vector space as documents
    assert all(float(d @ q) > 0.9999 for d, q in zip(docs, concurrent, strict=True))

    batcher.max_batch = 3  # the cap splits a burst into ceil(8 / 3) calls, results still in order
    try:
        batches = batcher.batches
        capped = await asyncio.gather(*(emb.embed_query(q) for q in QUERIES))
        assert batcher.batches - batches == 3
        assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(sequential, capped, strict=True))
    finally:
        batcher.max_batch = 64


async def test_queries_arriving_while_the_model_is_busy_are_batched(runtime: Runtime) -> None:
    emb = runtime.embedder
    assert isinstance(emb, ThreadedLocalEmbedder)
    busy = asyncio.create_task(emb.embed_documents(["A long chunk of documentation text. " * 40] * 32))
    await asyncio.sleep(0.05)  # the model thread is now encoding the documents

    async def late(i: int) -> np.ndarray:
        await asyncio.sleep(i * 0.005)  # 12 queries spread over 60 ms, each its own arrival
        return await emb.embed_query(QUERIES[i % len(QUERIES)])

    batches = emb.queries.batches
    vectors = await asyncio.gather(*(late(i) for i in range(12)))
    await busy
    assert emb.queries.batches - batches <= 2  # the first one alone at most, then the rest together
    assert np.allclose(vectors[0], vectors[8], atol=1e-5)


async def test_a_query_goes_before_the_rest_of_a_large_page(runtime: Runtime) -> None:
    emb = runtime.embedder
    assert isinstance(emb, ThreadedLocalEmbedder)
    finished: list[str] = []

    async def page() -> None:
        await emb.embed_documents(["A long chunk of documentation text. " * 40] * (DOCUMENT_SLICE * 4))
        finished.append("page")

    async def query() -> None:
        await emb.embed_query(QUERIES[0])
        finished.append("query")

    busy = asyncio.create_task(page())
    await asyncio.sleep(0.05)  # the first slice of the page is on the model thread
    await asyncio.gather(busy, query())
    assert finished == ["query", "page"]  # the query waited for one slice, not for four


async def test_chunks_of_concurrent_pages_share_model_calls(runtime: Runtime) -> None:
    emb = runtime.embedder
    assert isinstance(emb, ThreadedLocalEmbedder)
    batches = emb.documents.batches
    first, second = await asyncio.gather(emb.embed_documents(QUERIES[:3]), emb.embed_documents(QUERIES[3:6]))
    assert emb.documents.batches - batches == 1  # two small pages, one model call
    alone = await emb.embed_documents(QUERIES[:6])
    assert np.array_equal(np.stack(first + second), np.stack(alone))  # a text's vector does not depend on its batch


async def test_the_lane_serves_lower_priority_numbers_first_and_survives_cancellation() -> None:
    lane = PriorityLane()
    order: list[str] = []
    gate = asyncio.Event()

    def job(name: str, wait: bool = False) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            if wait:
                await gate.wait()
            order.append(name)

        return run

    first = asyncio.create_task(lane.run(DOCUMENT_PRIORITY, job("doc-1", wait=True)))
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(lane.run(DOCUMENT_PRIORITY, job("doc-2"))),
        asyncio.create_task(lane.run(QUERY_PRIORITY, job("query"))),
        asyncio.create_task(lane.run(QUERY_PRIORITY, job("cancelled"))),
    ]
    await asyncio.sleep(0)
    waiting[2].cancel()
    gate.set()
    await asyncio.gather(first, *waiting, return_exceptions=True)
    assert order == ["doc-1", "query", "doc-2"]
    await lane.run(QUERY_PRIORITY, job("after"))  # the lane is free again
    assert order[-1] == "after"


async def test_a_failed_batch_fails_every_waiter_and_the_next_batch_runs(runtime: Runtime) -> None:
    emb = runtime.embedder
    assert isinstance(emb, ThreadedLocalEmbedder)
    bad: str = None  # type: ignore[assignment]  # the model rejects it: a real failure inside the batch
    batches = emb.queries.batches
    results = await asyncio.gather(emb.embed_query("fine"), emb.embed_query(bad), return_exceptions=True)
    assert emb.queries.batches - batches == 1
    assert all(isinstance(r, EmbeddingError) for r in results) and str(results[0]) == str(results[1])
    assert (await emb.embed_query("fine")).shape == (384,)


async def test_a_cancelled_waiter_does_not_disturb_its_batch(runtime: Runtime) -> None:
    emb = runtime.embedder
    assert isinstance(emb, ThreadedLocalEmbedder)
    expected = [await emb.embed_query(q) for q in QUERIES]
    items = emb.queries.items
    tasks = [asyncio.create_task(emb.embed_query(q)) for q in QUERIES]
    await asyncio.sleep(0)  # every task has queued its query; the batch has not been taken yet
    tasks[2].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    assert emb.queries.items - items == len(QUERIES) - 1  # the cancelled query was not embedded
    for i, (want, got) in enumerate(zip(expected, results, strict=True)):
        if i != 2:
            assert isinstance(got, np.ndarray) and np.allclose(want, got, atol=1e-5)

    # cancelled while its batch is on the model thread: the others still get their vectors
    tasks = [asyncio.create_task(emb.embed_query(q)) for q in QUERIES]
    await asyncio.sleep(0.01)
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, np.ndarray) for r in results[1:])


def test_unknown_local_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never downloaded"):
        resolve_local_model_dir("BAAI/bge-small-en-v1.5")
    with pytest.raises(ConfigError, match="never downloaded"):
        make_embedder(_settings(tmp_path, embedding_model=str(tmp_path / "missing")))


async def test_openai_compatible_endpoint(runtime: Runtime, tmp_path: Path) -> None:
    model = runtime.embedder._model.value  # type: ignore[attr-defined]  # the loaded model (ONNX Runtime)
    behaviour = Behaviour()
    async with serve(model, behaviour) as base:
        s = _settings(
            tmp_path,
            embedding_provider="openai",
            openai_api_key=behaviour.api_key,
            openai_base_url=base,
            embedding_model="minilm-compatible",
            embedding_batch_size=2,
        )
        emb = make_embedder(s)
        assert isinstance(emb, OpenAIEmbedder)
        try:
            await emb.start()  # an unknown model: the dimension is probed with one request
            assert emb.dimension == 384 and len(behaviour.requests) == 1
            texts = ["alpha", "beta", "gamma", "delta", "epsilon"]
            remote = await emb.embed_documents(texts)
            assert len(behaviour.requests) == 1 + 3  # batches of 2
            local = await runtime.embedder.embed_documents(texts)
            assert all(float(r @ loc) > 0.999 for r, loc in zip(remote, local, strict=True))  # order restored by index
            q = await emb.embed_query("alpha")
            assert float(q @ local[0]) > 0.999
            behaviour.fail_first = 2  # transient 503s are retried
            assert len(await emb.embed_documents(["retry me"])) == 1
            assert (await emb.health())["status"] == "ok"
        finally:
            await emb.aclose()

        bad = make_embedder(
            _settings(
                tmp_path,
                embedding_provider="openai",
                openai_api_key="sk-wrong-secret",
                openai_base_url=base,
                embedding_model="text-embedding-3-small",
            )
        )
        try:
            with pytest.raises(EmbeddingError, match="401") as info:
                await bad.embed_query("x")
            assert "sk-wrong-secret" not in str(info.value)
        finally:
            await bad.aclose()

    down = make_embedder(
        _settings(
            tmp_path,
            embedding_provider="openai",
            openai_api_key="k",
            openai_base_url=base,
            embedding_model="text-embedding-3-small",
        )
    )
    try:
        with pytest.raises(EmbeddingError, match="unavailable"):
            await down.embed_query("x")
        assert (await down.health())["status"] == "error"
    finally:
        await down.aclose()


async def test_runtime_with_openai_provider_indexes_and_searches(
    runtime: Runtime, tmp_path: Path, site_url: str
) -> None:
    """The whole pipeline on an OpenAI-compatible embedder, with its own embedded database."""
    model = runtime.embedder._model.value  # type: ignore[attr-defined]
    behaviour = Behaviour()
    async with serve(model, behaviour) as base:
        s = _settings(
            tmp_path,
            embedding_provider="openai",
            openai_api_key=behaviour.api_key,
            openai_base_url=base,
            embedding_model="text-embedding-3-small",
            embedding_dimensions=384,
        )
        async with Runtime.open(s) as rt:
            await rt.pipeline.index_page(f"{site_url}/guide/config.html")
            res = await rt.pipeline.search(
                SearchRequest.create(rt.settings, "what happens to snapshots during compaction", k=3, mode="dense")
            )
            assert res.hits[0].url.endswith("/guide/config.html")
            health = await rt.health()
            assert health["embedding"] == {"model": "text-embedding-3-small", "dimension": 384}
            assert all(r.get("dimensions") == 384 for r in behaviour.requests)


@pytest.mark.parametrize(("backend", "quantized"), [("onnx", False), ("onnx-int8", True)])
def test_embedding_backend_setting_picks_onnx(tmp_path: Path, backend: str, quantized: bool) -> None:
    from mcp_web_ingest.encoders.onnx import OnnxEmbedder

    emb = make_embedder(_settings(tmp_path, embedding_backend=backend))
    assert isinstance(emb, OnnxEmbedder)
    assert emb.model_name == "sentence-transformers/all-MiniLM-L6-v2" and emb.dimension == 384


async def test_a_background_load_is_reported_before_anyone_awaits_it() -> None:
    """health reads value/error: a model loaded at start-up must not show 'loading' until the first search."""
    from concurrent.futures import ThreadPoolExecutor

    from mcp_web_ingest.encoders.loading import BackgroundLoad

    def fails() -> str:
        raise RuntimeError("no model here")

    with ThreadPoolExecutor(max_workers=1) as pool:
        ok: BackgroundLoad[str] = BackgroundLoad(pool, lambda: "model")
        bad: BackgroundLoad[str] = BackgroundLoad(pool, fails)
        ok.start()
        bad.start()
        for _ in range(200):
            if ok.value is not None and bad.error is not None:
                break
            await asyncio.sleep(0.01)
    assert ok.value == "model" and isinstance(bad.error, RuntimeError)
