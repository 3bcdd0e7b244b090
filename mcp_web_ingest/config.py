"""Settings: one pydantic-settings object, read from the environment (and .env) once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mcp_web_ingest.errors import ConfigError

MIN_TOKEN_LENGTH = 16


def default_data_dir() -> Path:
    """The per-user data directory (XDG on Linux) used when DATA_DIR is not set."""
    return Path(platformdirs.user_data_dir("mcp-web-ingest", appauthor=False))


class Settings(BaseSettings):
    """Every setting of the server; environment variable names are the field names in upper case."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False)

    # --- storage ---
    postgres_connection_string: SecretStr | None = Field(
        default=None, description="PostgreSQL 15+ with pgvector; unset = run the embedded PostgreSQL under DATA_DIR."
    )
    data_dir: Path = Field(default_factory=default_data_dir, description="Where the embedded database and state live.")
    vector_store: Literal["postgres", "qdrant"] = Field(
        default="postgres", description="Where dense and sparse vectors are searched: PostgreSQL or Qdrant."
    )
    db_pool_min: int = Field(default=1, ge=1)
    db_pool_max: int = Field(default=8, ge=1)

    # --- server ---
    mcp_host: str = Field(default="127.0.0.1", description="Interface the HTTP transports bind to.")
    mcp_port: int = Field(default=3000, ge=1, le=65535, description="Port of /mcp, /sse, /health and /metrics.")
    log_level: str = Field(default="INFO")
    mcp_auth_token: SecretStr | None = Field(
        default=None, description="Bearer token the HTTP transports require (required when binding beyond loopback)."
    )
    # `| str`: comma separated or a JSON list, as ALLOWED_HOSTS (the validator below always makes a list).
    mcp_allowed_hosts: list[str] | str = Field(
        default_factory=list,
        description="Extra Host names answered (DNS-rebinding check): name, name:port, name:* or * for any.",
    )
    mcp_allowed_origins: list[str] | str = Field(
        default_factory=list, description="Browser origins answered besides this server's own."
    )
    metrics_require_auth: bool = Field(
        default=False, description="Require the bearer token for GET /metrics too (on METRICS_PORT as well)."
    )
    mcp_max_sessions: int = Field(default=1000, ge=1, description="Open MCP sessions (HTTP and SSE) at most.")
    mcp_max_sessions_per_client: int = Field(
        default=100, ge=0, description="Open MCP sessions per client address (0 = no per-client limit)."
    )
    mcp_session_idle_timeout_s: float = Field(
        default=600, gt=0, description="A streamable-HTTP session with no request for this long is closed."
    )

    @field_validator("mcp_auth_token", mode="before")
    @classmethod
    def _check_token(cls, v: object) -> object:
        raw = v.get_secret_value() if isinstance(v, SecretStr) else v
        if isinstance(raw, str):
            if not raw.strip():
                return None  # MCP_AUTH_TOKEN= (empty) means no token, never "any token"
            if len(raw.strip()) < MIN_TOKEN_LENGTH or raw != raw.strip():
                raise ValueError(
                    f"MCP_AUTH_TOKEN must be at least {MIN_TOKEN_LENGTH} characters without surrounding spaces; "
                    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        return v

    # --- embeddings ---
    embedding_provider: Literal["local", "openai"] = Field(default="local")
    embedding_model: str | None = Field(
        default=None, description="Model name; default all-MiniLM-L6-v2 (local) or text-embedding-3-small (openai)."
    )
    embedding_dimensions: int | None = Field(default=None, ge=1, description="Requested output size (openai only).")
    embedding_batch_size: int = Field(default=100, ge=1, le=2048)
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="torch", description="Local model runtime; onnx exports the model once to DATA_DIR/models."
    )
    openai_api_key: SecretStr | None = None
    llm_api_key: SecretStr | None = None
    openai_base_url: str = Field(default="https://api.openai.com/v1")

    # --- retrieval ---
    use_unified_pipeline: bool = True
    enable_hybrid_search: bool = True
    enable_reranking: bool = True
    enable_symbol_extraction: bool = True
    splade_url: str | None = None
    reranker_url: str | None = None
    crawl4ai_url: str | None = None
    crawl4ai_timeout_s: float | None = Field(
        default=None, gt=0, description="Wait for the Crawl4AI runner per page (default FETCH_TIMEOUT_S + 10 s)."
    )
    rerank_initial_k: int = Field(default=150, ge=1, le=1000)
    rerank_final_k: int = Field(default=10, ge=1, le=100)
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal-rank-fusion constant.")
    fusion_weight_dense: float = Field(default=1.0, ge=0)
    fusion_weight_lexical: float = Field(default=1.0, ge=0)
    fusion_weight_sparse: float = Field(default=1.0, ge=0)
    fusion_weight_symbol: float = Field(default=2.0, ge=0, description="Weight of the exact-symbol leg.")
    splade_batch_size: int = Field(default=32, ge=1, le=1024, description="Texts per SPLADE request.")
    splade_top_k: int | None = Field(default=None, ge=1, description="Keep only the top terms of document vectors.")
    splade_timeout_s: float = Field(default=30.0, gt=0)
    splade_query_timeout_s: float = Field(
        default=5.0, gt=0, description="Timeout of the query's SPLADE encoding during a search (one attempt)."
    )
    rerank_batch_size: int = Field(default=32, ge=1, le=1024, description="Texts per /rerank request (TEI: 32).")
    rerank_max_chars: int = Field(default=2000, ge=100, description="Candidate texts are clipped to this for rerank.")
    reranker_timeout_s: float = Field(default=30.0, gt=0)
    model_service_retries: int = Field(default=2, ge=1, le=10, description="Attempts per SPLADE/rerank request.")
    breaker_failure_threshold: int = Field(default=3, ge=1, description="Failures before a service is skipped.")
    breaker_reset_timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds before a failed service is retried."
    )
    sparse_backfill_interval_s: float = Field(default=60.0, gt=0, description="How often missing SPLADE vectors fill.")
    search_max_chars: int = Field(default=12000, ge=500, description="Default character budget of one search answer.")
    max_query_chars: int = Field(default=2000, ge=10)

    # --- chunking ---
    chunk_max_tokens: int = Field(default=256, ge=32, le=8192)
    chunk_overlap_tokens: int = Field(default=32, ge=0)

    # --- fetching ---
    user_agent: str = Field(default="mcp-web-ingest/0.1 (+https://github.com/mcp-web-ingest)")
    fetch_timeout_s: float = Field(default=30.0, gt=0)
    fetch_connect_timeout_s: float = Field(default=10.0, gt=0)
    fetch_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    fetch_max_redirects: int = Field(default=10, ge=0)
    fetch_retries: int = Field(
        default=3, ge=1, le=10, description="Attempts for transient failures (connect, 429, 5xx)."
    )
    fetch_retry_max_wait_s: float = Field(default=30.0, ge=0)

    # --- crawling ---
    crawl_concurrency: int = Field(default=4, ge=1, le=64, description="Pages of one job processed at once.")
    crawl_per_host_concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight per host.")
    crawl_requests_per_second: float = Field(
        default=10.0, ge=0, description="Request starts per second per host (0 = no limit; robots crawl-delay wins)."
    )
    crawl_max_depth: int = Field(default=20, ge=0, description="Largest max_depth a crawl may ask for.")
    crawl_max_pages: int = Field(default=10000, ge=1, description="Largest max_pages a crawl may ask for.")
    crawl_max_concurrent_jobs: int = Field(default=4, ge=1, description="Crawl jobs running at once per process.")

    # --- security (#8): fields added below this line ---
    allow_private_networks: bool = Field(
        default=False, description="Allow fetching loopback, private and link-local addresses (SSRF guard off)."
    )
    # `| str` keeps pydantic-settings from JSON-decoding the variable, so "a.example, 10.0.0.0/8" reaches the
    # validator below, which always turns it into a list.
    allowed_hosts: list[str] | str = Field(
        default_factory=list, description="Host names and CIDRs fetched even when private (comma separated or JSON)."
    )
    max_chunks_per_page: int = Field(default=2000, ge=1, description="Most chunks one page may produce.")
    extract_timeout_s: float = Field(
        default=60.0, gt=0, description="Extracting one page stops with an error after this (a worker process)."
    )

    @field_validator("allowed_hosts", "mcp_allowed_hosts", "mcp_allowed_origins", mode="before")
    @classmethod
    def _split_hosts(cls, v: object) -> object:
        if isinstance(v, str):
            if v.strip().startswith("["):
                import json  # here, not at the top: this block owns only its own lines

                return json.loads(v)
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, v: list[str] | str) -> list[str]:
        import ipaddress  # here, not at the top: this block owns only its own lines

        hosts = [v] if isinstance(v, str) else v
        for entry in hosts:
            if "/" in entry:
                ipaddress.ip_network(entry.strip().strip("[]"), strict=False)  # ValueError names the bad CIDR
        return [h.strip().lower() for h in hosts if h.strip()]

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins")
    @classmethod
    def _as_list(cls, v: list[str] | str) -> list[str]:
        return [h.strip() for h in ([v] if isinstance(v, str) else v) if h.strip()]

    # --- Qdrant (#6): used when VECTOR_STORE=qdrant ---
    qdrant_url: str | None = Field(
        default=None,
        description="Qdrant server URL (http://host:6333), or ':memory:' / a directory for qdrant-client local mode.",
    )
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = Field(
        default="web_ingest_chunks", pattern=r"^[A-Za-z0-9_-]{1,128}$", description="Qdrant collection name."
    )
    qdrant_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of each Qdrant request.")
    qdrant_prefer_grpc: bool = Field(default=False, description="Talk gRPC (port 6334) instead of REST.")
    qdrant_shard_number: int | None = Field(default=None, ge=1, description="Shards of the collection (cluster).")
    qdrant_replication_factor: int | None = Field(default=None, ge=1, description="Copies of each shard (cluster).")
    qdrant_write_consistency_factor: int | None = Field(
        default=None, ge=1, description="Replicas that must acknowledge a write (cluster)."
    )
    qdrant_on_disk: bool = Field(default=False, description="Keep the original dense vectors on disk (memmap).")
    qdrant_hnsw_on_disk: bool = Field(default=False, description="Keep the dense HNSW graph on disk.")
    qdrant_on_disk_payload: bool = Field(default=True, description="Keep payloads on disk.")
    qdrant_quantization: Literal["none", "scalar", "binary"] = Field(
        default="none", description="Quantize dense vectors in RAM (scalar int8: 4x smaller; binary: 32x)."
    )

    # --- operations (#7): fields added below this line ---
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Also serve Prometheus metrics on this port (e.g. for stdio mode)."
    )

    @field_validator("openai_base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_max_tokens:
            raise ValueError("CHUNK_OVERLAP_TOKENS must be smaller than CHUNK_MAX_TOKENS")
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("DB_POOL_MIN must not exceed DB_POOL_MAX")
        if self.embedding_provider == "openai" and self.openai_key is None:
            raise ValueError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (or LLM_API_KEY)")
        if self.metrics_require_auth and self.mcp_auth_token is None:
            raise ValueError("METRICS_REQUIRE_AUTH=true needs MCP_AUTH_TOKEN (the token /metrics then requires)")
        if self.vector_store == "qdrant" and not self.qdrant_url:
            raise ValueError(
                "VECTOR_STORE=qdrant needs QDRANT_URL: a server (http://localhost:6333), ':memory:' or a directory "
                "for qdrant-client's local mode"
            )
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

    @property
    def pipeline_name(self) -> str:
        """'unified' or 'legacy'."""
        return "unified" if self.use_unified_pipeline else "legacy"


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment, turning validation errors into one readable ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            lines.append(f"{loc}: {err['msg']}")
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(lines)) from exc
