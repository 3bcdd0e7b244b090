"""In-process SPLADE (SPLADE_MODEL_DIR): sentence-transformers' vectors, a runtime that indexes and searches with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcp_web_ingest.config import Settings, load_settings
from mcp_web_ingest.encoders.splade_local import LocalSpladeEncoder
from mcp_web_ingest.errors import ConfigError
from mcp_web_ingest.runtime import Runtime
from mcp_web_ingest.search.request import SearchRequest
from tools.model_runner.testing import SENTENCES, build_tiny_models

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BertForMaskedLM with its tokenizer (the export needs torch)."""
    pytest.importorskip("torch")
    return build_tiny_models(tmp_path_factory.mktemp("tiny"))[0]


async def test_vectors_match_sentence_transformers(mlm_dir: Path, tmp_path: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    texts = [*SENTENCES[:3], "tide tables list high and low water"]
    expected = st.SparseEncoder(str(mlm_dir), device="cpu").encode(texts, convert_to_tensor=True).to_dense().numpy()
    encoder = LocalSpladeEncoder(mlm_dir, cache_dir=tmp_path, quantize=False)
    try:
        got = await encoder.encode(texts, "document")
    finally:
        await encoder.aclose()
    for vec, want in zip(got, expected, strict=True):
        assert vec.dim == len(want)
        dense = np.zeros(vec.dim, dtype=np.float32)
        dense[list(vec.indices)] = vec.values
        assert vec.indices == tuple(np.flatnonzero(want > 0))
        np.testing.assert_allclose(dense, want, rtol=1e-4, atol=1e-5)


async def test_runtime_indexes_and_searches_with_a_local_model(
    settings: Settings, mlm_dir: Path, site_url: str, tmp_path: Path
) -> None:
    local = settings.model_copy(update={"data_dir": tmp_path / "data", "splade_model_dir": mlm_dir})
    async with Runtime.open(local, resume_jobs=False) as rt:
        out = await rt.pipeline.index_page(f"{site_url}/retrieval/tides.html")
        res = await rt.pipeline.search(SearchRequest.create(rt.settings, "reading a tide table", rerank=False))
        assert "sparse" in res.legs_used and res.hits
        async with rt.db.pool.connection() as conn:
            postings = (await (await conn.execute("SELECT count(*) FROM chunk_sparse_postings")).fetchone())[0]
            missing = (await (await conn.execute("SELECT count(*) FROM chunks WHERE NOT has_sparse")).fetchone())[0]
        assert out.chunk_count > 0 and postings > 0 and missing == 0
        splade = (await rt.health())["components"]["splade"]
        assert splade["status"] == "ok" and splade["backend"] == "onnx-int8"
    assert list(local.resolved_model_cache_dir.glob("tiny-mlm-*/splade.int8.onnx"))  # exported to MODEL_CACHE_DIR


def test_splade_url_and_model_dir_are_exclusive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPLADE_URL", "http://splade:8000")
    monkeypatch.setenv("SPLADE_MODEL_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"SPLADE_URL.*SPLADE_MODEL_DIR.*not both"):
        load_settings(_env_file=None)
