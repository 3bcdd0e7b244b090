"""Settings of the HTTP server and of the stores: bind, auth, sessions, database, Qdrant."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from mcp_web_ingest.config.common import MIN_TOKEN_LENGTH, default_data_dir, split_list

# List fields are typed `list[str] | str`: the `| str` keeps pydantic-settings from JSON-decoding the variable, so
# "a.example, 10.0.0.0/8" reaches the splitting validator, which always turns it into a list.


class ServerSettings(BaseModel):
    """The MCP server: bind address, bearer-token authentication, Host and Origin checks, sessions, logs, metrics."""

    mcp_host: str = Field(
        default="127.0.0.1",
        description="Interface the HTTP transports bind to; beyond loopback MCP_AUTH_TOKEN is required "
        "(unless serve --insecure-no-auth).",
    )
    mcp_port: int = Field(default=3000, ge=1, le=65535, description="Port of /mcp, /sse, /health and /metrics.")
    log_level: str = Field(
        default="INFO", description="Log level; logs go to stderr (stdout belongs to the stdio transport)."
    )
    mcp_auth_token: SecretStr | None = Field(
        default=None,
        description="Bearer token (16+ characters, e.g. from Python's secrets.token_urlsafe(32); empty = unset) "
        "required by /mcp, /sse and /messages/ (and /metrics with METRICS_REQUIRE_AUTH=true); required to bind beyond "
        "loopback.",
    )
    mcp_allowed_hosts: list[str] | str = Field(
        default_factory=list,
        description="Extra Host names answered (DNS-rebinding check), on top of loopback names, IP addresses and this "
        "machine's names: name, name:port, name:* or * for any; comma separated or a JSON list.",
        examples=["mcp.example.org,docs-proxy:8080"],
    )
    mcp_allowed_origins: list[str] | str = Field(
        default_factory=list,
        description="Browser origins answered besides this server's own; comma separated or a JSON list.",
        examples=["https://app.example"],
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Also serve Prometheus /metrics on this port (how to reach metrics in stdio mode).",
    )
    metrics_require_auth: bool = Field(
        default=False,
        description="Require the bearer token for GET /metrics too (on METRICS_PORT as well); needs MCP_AUTH_TOKEN.",
    )
    mcp_max_sessions: int = Field(
        default=1000,
        ge=1,
        description="Open MCP sessions at most (streamable HTTP; SSE streams are counted apart); at the cap the least "
        "recently used idle session is closed.",
    )
    mcp_max_sessions_per_client: int = Field(
        default=100, ge=0, description="Open MCP sessions per client address (0 = no per-client limit)."
    )
    mcp_session_idle_timeout_s: float = Field(
        default=600,
        gt=0,
        description="A streamable-HTTP session with no request for this many seconds is closed (the client "
        "initializes again).",
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

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins", mode="before")
    @classmethod
    def _split_server_lists(cls, v: object) -> object:
        return split_list(v)

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins")
    @classmethod
    def _as_list(cls, v: list[str] | str) -> list[str]:
        return [h.strip() for h in ([v] if isinstance(v, str) else v) if h.strip()]

    @model_validator(mode="after")
    def _check_metrics_auth(self) -> Self:
        if self.metrics_require_auth and self.mcp_auth_token is None:
            raise ValueError("METRICS_REQUIRE_AUTH=true needs MCP_AUTH_TOKEN (the token /metrics then requires)")
        return self


class StorageSettings(BaseModel):
    """The PostgreSQL database (embedded by default), where vectors are searched, and the connection pool."""

    postgres_connection_string: SecretStr | None = Field(
        default=None,
        description="PostgreSQL 15+ with pgvector; unset: the embedded PostgreSQL under DATA_DIR/pgdata.",
        examples=["postgresql://user:password@localhost:5533/mcp_web_ingest"],
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded database, exported models and state live; unset: the per-user data "
        "directory (XDG: ~/.local/share/mcp-web-ingest on Linux).",
    )
    vector_store: Literal["postgres", "qdrant"] = Field(
        default="postgres",
        description="Where dense, SPLADE and BM25 vectors are searched: postgres, or qdrant (needs QDRANT_URL and "
        "pip install '.[qdrant]'; README: Scaling out with Qdrant). PostgreSQL keeps everything else.",
    )
    db_pool_min: int = Field(default=1, ge=1, description="Database connections the pool keeps open at least.")
    db_pool_max: int = Field(default=8, ge=1, description="Database connections the pool opens at most.")

    @model_validator(mode="after")
    def _check_pool(self) -> Self:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("DB_POOL_MIN must not exceed DB_POOL_MAX")
        return self


class QdrantSettings(BaseModel):
    """Qdrant, used when VECTOR_STORE=qdrant: the connection, and the collection's layout when it is created."""

    qdrant_url: str | None = Field(
        default=None,
        description="http://host:6333 (a server or cluster), or :memory: / a directory for qdrant-client's local mode "
        "(one process at a time; for tests and trials).",
        examples=["http://localhost:6333"],
    )
    qdrant_api_key: SecretStr | None = Field(default=None, description="API key of the Qdrant server.")
    qdrant_collection: str = Field(
        default="web_ingest_chunks", pattern=r"^[A-Za-z0-9_-]{1,128}$", description="Qdrant collection name."
    )
    qdrant_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of each Qdrant request.")
    qdrant_prefer_grpc: bool = Field(default=False, description="Talk gRPC (port 6334) instead of REST.")
    qdrant_shard_number: int | None = Field(
        default=None, ge=1, description="Shards of the collection (cluster; unset: the server's default)."
    )
    qdrant_replication_factor: int | None = Field(
        default=None, ge=1, description="Copies of each shard (cluster; unset: the server's default)."
    )
    qdrant_write_consistency_factor: int | None = Field(
        default=None, ge=1, description="Replicas that must acknowledge a write (cluster; unset: the server's default)."
    )
    qdrant_on_disk: bool = Field(default=False, description="Keep the original dense vectors on disk (memmap).")
    qdrant_hnsw_on_disk: bool = Field(default=False, description="Keep the dense HNSW graph on disk.")
    qdrant_on_disk_payload: bool = Field(default=True, description="Keep payloads on disk.")
    qdrant_quantization: Literal["none", "scalar", "binary"] = Field(
        default="none", description="Quantize dense vectors in RAM (scalar int8: 4x smaller; binary: 32x)."
    )
