"""Embedders: the local MiniLM and the OpenAI-compatible HTTP client against a real local endpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcp_web_ingest.config import Settings
from mcp_web_ingest.embed import LocalEmbedder, OpenAIEmbedder, make_embedder, resolve_local_model_dir
from mcp_web_ingest.errors import ConfigError, EmbeddingError
from mcp_web_ingest.runtime import Runtime

from .openai_compat import Behaviour, serve


def _settings(tmp_path: Path, **kw: object) -> Settings:
    kw.setdefault("allow_private_networks", True)  # local endpoints on 127.0.0.1
    return Settings(_env_file=None, data_dir=tmp_path, **kw)  # type: ignore[call-arg]


async def test_local_embedder_vectors_are_normalised_and_context_sensitive(runtime: Runtime) -> None:
    emb = runtime.embedder
    assert isinstance(emb, LocalEmbedder) and emb.dimension == 384
    a, b, c = await emb.embed_documents(["install with pip", "installing using pip", "the weather in Lisbon"])
    assert a.shape == (384,) and abs(float(np.linalg.norm(a)) - 1) < 1e-5
    assert float(a @ b) > float(a @ c) + 0.2
    assert await emb.embed_documents([]) == []
    assert (await emb.health())["status"] == "ok"


def test_unknown_local_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never downloaded"):
        resolve_local_model_dir("BAAI/bge-small-en-v1.5")
    with pytest.raises(ConfigError, match="never downloaded"):
        make_embedder(_settings(tmp_path, embedding_model=str(tmp_path / "missing")))


async def test_openai_compatible_endpoint(runtime: Runtime, tmp_path: Path) -> None:
    model = runtime.embedder._model  # type: ignore[attr-defined]  # the loaded sentence-transformers model
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
    model = runtime.embedder._model  # type: ignore[attr-defined]
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
            res = await rt.pipeline.search("what happens to snapshots during compaction", k=3, mode="dense")
            assert res.hits[0].url.endswith("/guide/config.html")
            health = await rt.health()
            assert health["embedding"] == {"model": "text-embedding-3-small", "dimension": 384}
            assert all(r.get("dimensions") == 384 for r in behaviour.requests)


@pytest.mark.parametrize(("backend", "quantized"), [("onnx", False), ("onnx-int8", True)])
def test_embedding_backend_setting_picks_onnx(tmp_path: Path, backend: str, quantized: bool) -> None:
    from mcp_web_ingest.embed_onnx import OnnxEmbedder

    emb = make_embedder(_settings(tmp_path, embedding_backend=backend))
    assert isinstance(emb, OnnxEmbedder)
    assert emb.model_name == "sentence-transformers/all-MiniLM-L6-v2" and emb.dimension == 384
