"""The model runner (tools/model_runner) as a real subprocess on 127.0.0.1, with tiny randomly initialised models.

The models are random: these tests check the API contract, shapes, sparsity and ordering plumbing, not relevance.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tools.faults import Faults
from tools.faults import add_arguments as add_fault_arguments
from tools.faults import from_arguments as faults_from_arguments
from tools.model_runner.app import create_app
from tools.model_runner.models import RunnerConfig
from tools.model_runner.testing import SENTENCES, RunnerProcess, build_tiny_models

BATCH = 4  # the runner's BATCH_SIZE: small, so requests span several model batches
MAX_TEXTS = 8  # the runner's MAX_CLIENT_BATCH_SIZE


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(masked-LM dir, cross-encoder dir), built in ~0.5 s."""
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def runner(tiny_models: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Base URL of a runner subprocess serving both tiny models."""
    mlm, ce = tiny_models
    env = {
        "MODEL_NAME": str(mlm),
        "RERANK_MODEL": str(ce),
        "DEVICE": "cpu",
        "BATCH_SIZE": str(BATCH),
        "MAX_CLIENT_BATCH_SIZE": str(MAX_TEXTS),
    }
    proc = RunnerProcess(env, tmp_path_factory.mktemp("runner") / "runner.log")
    proc.start()
    try:
        await proc.wait_ready()
        yield proc.url
    finally:
        proc.stop()


async def post(url: str, body: Any, raw: bool = False) -> tuple[int, Any]:
    """POST JSON (or raw bytes) and return (status, decoded JSON body)."""
    async with aiohttp.ClientSession() as s:
        kwargs: dict[str, Any] = {"data": body} if raw else {"json": body}
        async with s.post(url, **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)


async def test_health_reports_models(runner: str, tiny_models: tuple[Path, Path]) -> None:
    async with aiohttp.ClientSession() as s, s.get(runner + "/health") as resp:
        body = await resp.json()
    assert resp.status == 200
    assert body["status"] == "ok" and body["device"] == "cpu"
    assert body["sparse"]["model"] == str(tiny_models[0]) and body["sparse"]["loaded"] is True
    assert body["reranker"] == {"model": str(tiny_models[1]), "loaded": True, "max_input_length": 128}
    assert body["batch_size"] == BATCH and body["max_client_batch_size"] == MAX_TEXTS


async def test_sparse_batch_contract(runner: str, tiny_models: tuple[Path, Path]) -> None:
    texts = SENTENCES[:MAX_TEXTS] + SENTENCES[: MAX_TEXTS - len(SENTENCES)]  # 8 texts: two model batches of 4
    status, body = await post(runner + "/sparse/batch", {"texts": texts, "kind": "document"})
    assert status == 200, body
    _, query = await post(runner + "/sparse/batch", {"texts": ["fox"], "kind": "query"})
    assert body["model"] == str(tiny_models[0])
    assert body["dim"] == query["dim"] > 100  # the tokenizer's vocabulary, not the hidden size (32)
    assert len(body["vectors"]) == len(texts)
    for vec in body["vectors"]:
        idx, val = vec["indices"], vec["values"]
        assert len(idx) == len(val) > 0
        assert idx == sorted(set(idx)) and idx[0] >= 0 and idx[-1] < body["dim"]
        assert all(v > 0 for v in val)  # SPLADE: log(1 + relu(x)), zeros are left out
        assert len(idx) < body["dim"]
    # A text's vector does not depend on the batch it was encoded in.
    _, single = await post(runner + "/sparse/batch", {"texts": [texts[5]], "kind": "document"})
    assert single["vectors"][0]["indices"] == body["vectors"][5]["indices"]
    assert single["vectors"][0]["values"] == pytest.approx(body["vectors"][5]["values"], rel=1e-4, abs=1e-6)


async def test_sparse_top_k_keeps_the_largest_weights(runner: str) -> None:
    text = SENTENCES[1]
    _, full = await post(runner + "/sparse/batch", {"texts": [text], "kind": "query"})
    _, top = await post(runner + "/sparse/batch", {"texts": [text], "kind": "query", "top_k": 3})
    f, t = full["vectors"][0], top["vectors"][0]
    assert len(t["indices"]) == 3 and t["indices"] == sorted(t["indices"])
    largest = sorted(zip(f["values"], f["indices"], strict=True), reverse=True)[:3]
    assert sorted(i for _, i in largest) == t["indices"]


async def test_rerank_contract(runner: str) -> None:
    texts = [*SENTENCES, "postgres", "json"]  # 7 texts: two model batches
    status, ranks = await post(runner + "/rerank", {"query": "json parsing", "texts": texts})
    assert status == 200, ranks
    assert sorted(r["index"] for r in ranks) == list(range(len(texts)))
    assert [r["score"] for r in ranks] == sorted((r["score"] for r in ranks), reverse=True)
    assert all("text" not in r for r in ranks)
    assert all(0.0 < r["score"] < 1.0 for r in ranks)  # sigmoid of the single logit, as TEI does by default
    _, with_text = await post(runner + "/rerank", {"query": "json parsing", "texts": texts, "return_text": True})
    assert all(r["text"] == texts[r["index"]] for r in with_text)
    _, raw = await post(runner + "/rerank", {"query": "json parsing", "texts": texts, "raw_scores": True})
    by_index = {r["index"]: r["score"] for r in ranks}
    for r in raw:
        assert 1 / (1 + math.exp(-r["score"])) == pytest.approx(by_index[r["index"]], abs=1e-5)


@pytest.mark.parametrize(
    ("path", "body", "status", "error_type", "message"),
    [
        ("/rerank", {"query": "q", "texts": []}, 400, "empty", "`texts` cannot be empty"),
        ("/rerank", {"query": "q", "texts": ["a"] * (MAX_TEXTS + 1)}, 413, "validation", "batch size 9 > maximum"),
        ("/rerank", {"query": "q", "texts": ["fox " * 200]}, 413, "validation", "must have less than 128 tokens"),
        ("/rerank", {"texts": ["a"]}, 422, "validation", "missing field `query`"),
        ("/rerank", {"query": "q", "texts": "a"}, 422, "validation", "`texts` has the wrong type"),
        ("/rerank", {"query": "q", "texts": [1, 2]}, 422, "validation", "list of strings"),
        ("/rerank", {"query": "q", "texts": ["a"], "truncate": "yes"}, 422, "validation", "`truncate`"),
        ("/sparse/batch", {"texts": []}, 400, "empty", "`texts` cannot be empty"),
        ("/sparse/batch", {"texts": ["ok", "  "]}, 400, "empty", "empty strings"),
        ("/sparse/batch", {"texts": ["a"] * (MAX_TEXTS + 1)}, 413, "validation", "maximum allowed batch size 8"),
        ("/sparse/batch", {"texts": ["fox " * 200], "truncate": False}, 413, "validation", "128 tokens"),
        ("/sparse/batch", {"texts": ["a"], "kind": "passage"}, 422, "validation", "'query' or 'document'"),
        ("/sparse/batch", {"texts": ["a"], "top_k": 0}, 422, "validation", "at least 1"),
        ("/sparse/batch", {"texts": ["a"], "top_k": True}, 422, "validation", "`top_k` has the wrong type"),
    ],
)
async def test_invalid_requests_are_refused_with_tei_errors(
    runner: str, path: str, body: Any, status: int, error_type: str, message: str
) -> None:
    got, err = await post(runner + path, body)
    assert (got, err["error_type"]) == (status, error_type), err
    assert message in err["error"]


async def test_long_inputs_pass_when_truncated(runner: str) -> None:
    status, ranks = await post(runner + "/rerank", {"query": "q", "texts": ["fox " * 200], "truncate": True})
    assert status == 200 and len(ranks) == 1
    status, body = await post(runner + "/sparse/batch", {"texts": ["fox " * 200]})  # truncate defaults on
    assert status == 200 and body["vectors"][0]["indices"]


async def test_malformed_json_and_unknown_route(runner: str) -> None:
    status, err = await post(runner + "/rerank", b'{"query": "q"', raw=True)
    assert status == 422 and err["error_type"] == "validation" and "JSON" in err["error"]
    async with aiohttp.ClientSession() as s, s.get(runner + "/nowhere") as resp:
        assert resp.status == 404 and (await resp.json())["error"]


async def test_health_answers_while_the_model_works(runner: str) -> None:
    """Model work runs on a worker thread: the event loop keeps answering during a batch."""
    texts = ["the quick brown fox " * 20] * MAX_TEXTS
    work = [post(runner + "/sparse/batch", {"texts": texts}) for _ in range(3)]
    async with aiohttp.ClientSession() as s:
        results = await asyncio.gather(*work, s.get(runner + "/health"))
    assert all(status == 200 for status, _ in results[:3])
    assert results[3].status == 200


async def test_rerank_without_a_reranker_model_is_424(tiny_models: tuple[Path, Path]) -> None:
    """In-process app (same code) with only the SPLADE model: /rerank answers TEI's 424 backend error."""
    app = create_app(RunnerConfig(model_name=str(tiny_models[0]), device="cpu"))
    async with TestClient(TestServer(app)) as client:
        for _ in range(300):
            health = await client.get("/health")
            if health.status == 200:
                break
            await asyncio.sleep(0.1)
        body = await health.json()
        assert body["reranker"] is None and body["sparse"]["loaded"] is True
        resp = await client.post("/rerank", json={"query": "q", "texts": ["a"]})
        err = await resp.json()
        assert resp.status == 424 and err["error_type"] == "backend" and "RERANK_MODEL" in err["error"]


async def test_failed_model_load_is_reported(tmp_path: Path) -> None:
    app = create_app(RunnerConfig(model_name=str(tmp_path / "missing"), device="cpu"))
    async with TestClient(TestServer(app)) as client:
        for _ in range(100):
            health = await client.get("/health")
            body = await health.json()
            if body["status"] != "loading":
                break
            await asyncio.sleep(0.1)
        assert health.status == 503 and body["status"] == "error" and "model load failed" in body["error"]
        resp = await client.post("/sparse/batch", json={"texts": ["a"]})
        assert resp.status == 503 and (await resp.json())["error_type"] == "unhealthy"


async def test_fault_control_is_off_by_default(runner: str) -> None:
    """Without --enable-fault-control (or ENABLE_FAULT_CONTROL) there is no /_fault route to slow the runner."""
    async with aiohttp.ClientSession() as s:
        for method in ("GET", "POST"):
            async with s.request(method, runner + "/_fault", json={"delay_s": 5}) as resp:
                assert resp.status == 404 and (await resp.json())["error"]


async def _timed_post(client: TestClient, path: str, body: Any) -> tuple[float, float, Any]:
    """(seconds to the status line, seconds to the whole body, decoded body) of one POST."""
    started = time.perf_counter()
    resp = await client.post(path, json=body)
    headers_s = time.perf_counter() - started
    payload = await resp.json()
    assert resp.status == 200, payload
    return headers_s, time.perf_counter() - started, payload


async def test_fault_control_slows_the_same_process_and_restores_it(tiny_models: tuple[Path, Path]) -> None:
    """POST /_fault delays or drips chosen routes of a running app, GET /_fault counts requests, {} restores it."""
    mlm, ce = tiny_models
    faults = Faults(control=True)
    app = create_app(RunnerConfig(model_name=str(mlm), rerank_model=str(ce), device="cpu"), faults=faults)
    sparse = {"texts": ["the quick brown fox"]}
    rerank = {"query": "fox", "texts": ["a quick fox", "a lazy dog"]}
    async with TestClient(TestServer(app)) as client:
        for _ in range(300):
            if (await client.get("/health")).status == 200:
                break
            await asyncio.sleep(0.1)
        state = await (await client.get("/_fault")).json()
        assert state == {**state, "delay_s": 0.0, "drip_s": 0.0, "paths": None} and state["requests"]["/health"] >= 1
        for bad in ({"delay_s": -1}, {"drip_s": "1"}, {"delay_s": True}, {"paths": "/rerank"}, {"delay": 1}, [1]):
            resp = await client.post("/_fault", json=bad)
            assert resp.status == 400 and (await resp.json())["error_type"] == "validation", bad
        _, _, fast_sparse = await _timed_post(client, "/sparse/batch", sparse)
        _, _, fast_rerank = await _timed_post(client, "/rerank", rerank)

        # Delay: only the named route waits, and then answers exactly what it answers when fast.
        resp = await client.post("/_fault", json={"delay_s": 1.0, "paths": ["/sparse/batch"], "reset_counts": True})
        assert resp.status == 200 and (await resp.json())["requests"] == {}
        _, slow_s, payload = await _timed_post(client, "/sparse/batch", sparse)
        assert slow_s >= 1.0 and payload == fast_sparse
        _, other_s, _ = await _timed_post(client, "/rerank", rerank)
        assert other_s < slow_s / 2

        # Drip: the status line comes at once, the body takes drip_s and arrives intact.
        await client.post("/_fault", json={"drip_s": 1.0, "paths": ["/rerank"]})
        headers_s, body_s, payload = await _timed_post(client, "/rerank", rerank)
        assert body_s >= 0.9 and headers_s < body_s / 2 and payload == fast_rerank

        # Default paths: every route but /health and /_fault.
        await client.post("/_fault", json={"delay_s": 1.0})
        started = time.perf_counter()
        assert (await client.get("/health")).status == 200
        assert time.perf_counter() - started < 0.5

        state = await (await client.post("/_fault", json={})).json()
        assert (state["delay_s"], state["drip_s"], state["paths"]) == (0.0, 0.0, None)
        assert state["requests"] == {**state["requests"], "/sparse/batch": 1, "/rerank": 2, "/health": 1}
        _, fast_s, _ = await _timed_post(client, "/sparse/batch", sparse)
        assert fast_s < slow_s / 2


def test_fault_injection_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off unless asked for; flags and environment variables set the initial slowness; nonsense is refused."""

    def parse(*argv: str) -> Faults | None:
        parser = argparse.ArgumentParser()
        add_fault_arguments(parser)
        return faults_from_arguments(parser.parse_args(argv))

    for name in ("ENABLE_FAULT_CONTROL", "FAULT_DELAY_S", "FAULT_DRIP_S"):
        monkeypatch.delenv(name, raising=False)
    assert parse() is None
    only_delay = parse("--fault-delay-s", "2.5")
    assert only_delay is not None and (only_delay.delay_s, only_delay.control) == (2.5, False)
    control = parse("--enable-fault-control")
    assert control is not None and control.control and control.delay_s == 0.0
    with pytest.raises(ValueError, match="delay_s"):
        parse("--fault-delay-s", "-1")
    monkeypatch.setenv("ENABLE_FAULT_CONTROL", "true")
    monkeypatch.setenv("FAULT_DRIP_S", "3")
    from_env = parse()
    assert from_env is not None and from_env.control and from_env.drip_s == 3.0
