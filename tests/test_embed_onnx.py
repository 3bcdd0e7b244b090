"""The ONNX Runtime embedder gives the same vectors as sentence-transformers (fp32) and implements the protocol."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.dense import resolve_local_model_dir
from mcp_web_ingest.encoders.onnx import OnnxEmbedder, OnnxEncoder, pool
from mcp_web_ingest.errors import EmbeddingError

TEXTS = [
    "how do I pretty-print JSON",
    "asyncio › Coroutines and Tasks\n\nasyncio.gather() runs awaitable objects concurrently. " * 30,
    "x",
    "pathlib › Basic use\n\nListing Python source files in this directory tree: sorted(p.rglob('*.py'))",
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 directory."""
    return resolve_local_model_dir("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the test exports the ONNX model (once per module)."""
    return tmp_path_factory.mktemp("onnx-models")


def test_pool_mean_ignores_padding() -> None:
    """Masked mean pooling, then unit length."""
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]], dtype=np.float32)
    out = pool(hidden, np.array([[1, 1, 0]]))
    assert np.allclose(out, [[1.0, 0.0]])
    assert np.allclose(pool(hidden, np.array([[1, 1, 1]]), "cls"), [[1.0, 0.0]])


def test_fp32_matches_sentence_transformers(model_dir: Path, cache_dir: Path) -> None:
    """Cosine >= 0.999 with sentence-transformers' normalised vectors, in input order."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True).encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True
    )
    encoder = OnnxEncoder(model_dir, cache_dir)
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == reference.shape
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= 0.999, cosines
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (cache_dir / encoder.path.parent.name / "model.onnx").exists()


async def test_embedder_protocol(cache_dir: Path, tmp_path: Path) -> None:
    """OnnxEmbedder reports the same model name and dimension as the torch embedder and embeds asynchronously."""
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    embedder = OnnxEmbedder(settings, cache_dir=cache_dir)
    assert embedder.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    assert embedder.dimension == 384
    assert (await embedder.health())["status"] == "loading"
    try:
        docs = await embedder.embed_documents(TEXTS[:2])
        query = await embedder.embed_query(TEXTS[0])
        assert len(docs) == 2
        assert float(np.dot(docs[0], query)) == pytest.approx(1.0, abs=1e-5)
        assert await embedder.embed_documents([]) == []
        health = await embedder.health()
        assert (health["status"], health["backend"]) == ("ok", "onnx")
    finally:
        await embedder.aclose()


async def test_concurrent_queries_are_batched_and_close_releases_waiters(cache_dir: Path, tmp_path: Path) -> None:
    """ONNX inherits query micro-batching; aclose() fails pending queries at once instead of hanging."""
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    embedder = OnnxEmbedder(settings, cache_dir=cache_dir, query_batch_max=16, query_window_s=0.001)
    queries = [f"{t[:60]} {i}" for i in range(5) for t in TEXTS]  # 20 distinct queries of mixed lengths
    try:
        sequential = [await embedder.embed_query(q) for q in queries]
        batches = embedder.queries.batches
        concurrent = await asyncio.gather(*(embedder.embed_query(q) for q in queries))
        assert embedder.queries.batches - batches == 2  # 20 queries, at most 16 per model call
        assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(sequential, concurrent, strict=True))

        busy = asyncio.create_task(embedder.embed_documents([TEXTS[1]] * 64))  # keeps the model thread busy
        await asyncio.sleep(0.02)
        waiters = [asyncio.create_task(embedder.embed_query(q)) for q in queries]
        await asyncio.sleep(0.01)
    finally:
        started = time.perf_counter()
        await asyncio.wait_for(embedder.aclose(), 5)
    assert time.perf_counter() - started < 1.0  # did not wait for the 64 documents
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, EmbeddingError) and "closed" in str(r) for r in results), results
    with pytest.raises(EmbeddingError, match="closed"):
        await embedder.embed_query("after close")
    busy.cancel()
    await asyncio.gather(busy, return_exceptions=True)


def test_int8_vector_of_a_text_does_not_depend_on_its_batch(model_dir: Path, cache_dir: Path) -> None:
    """Dynamic int8 quantises a run's activations with one scale: in a padded batch, batch-mates moved a vector."""
    encoder = OnnxEncoder(model_dir, cache_dir, quantize=True)
    alone = np.stack([encoder.encode([t])[0] for t in TEXTS])
    together = encoder.encode(list(TEXTS))
    assert np.array_equal(alone, together)
