"""Settings read the production environment names and fail with readable messages."""

from __future__ import annotations

import pytest

from mcp_web_ingest.config import load_settings
from mcp_web_ingest.errors import ConfigError

PRODUCTION_ENV = {
    "POSTGRES_CONNECTION_STRING": "postgresql://u:secret@db:5432/x",
    "OPENAI_API_KEY": "sk-test",
    "LLM_API_KEY": "llm-test",
    "ENABLE_HYBRID_SEARCH": "false",
    "ENABLE_RERANKING": "false",
    "ENABLE_SYMBOL_EXTRACTION": "false",
    "SPLADE_URL": "http://splade:8000",
    "RERANKER_URL": "http://reranker:80",
    "CRAWL4AI_URL": "http://crawl4ai:8000",
    "RERANK_INITIAL_K": "77",
    "RERANK_FINAL_K": "7",
    "EMBEDDING_BATCH_SIZE": "33",
    "USE_UNIFIED_PIPELINE": "false",
    "MCP_HOST": "0.0.0.0",
    "MCP_PORT": "3111",
    "DATA_DIR": "/tmp/somewhere",
    "EMBEDDING_PROVIDER": "openai",
    "EMBEDDING_MODEL": "text-embedding-3-small",
    "OPENAI_BASE_URL": "http://embeddings:8080/v1/",
    "VECTOR_STORE": "postgres",
    "QDRANT_URL": "http://qdrant:6333",
}


def test_reads_every_production_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    s = load_settings(_env_file=None)
    assert s.postgres_connection_string is not None
    assert s.postgres_connection_string.get_secret_value() == PRODUCTION_ENV["POSTGRES_CONNECTION_STRING"]
    assert s.openai_key is not None and s.openai_key.get_secret_value() == "sk-test"
    assert (s.enable_hybrid_search, s.enable_reranking, s.enable_symbol_extraction) == (False, False, False)
    assert (s.splade_url, s.reranker_url, s.crawl4ai_url) == (
        "http://splade:8000",
        "http://reranker:80",
        "http://crawl4ai:8000",
    )
    assert (s.rerank_initial_k, s.rerank_final_k, s.embedding_batch_size) == (77, 7, 33)
    assert s.use_unified_pipeline is False and s.pipeline_name == "legacy"
    assert (s.mcp_host, s.mcp_port, str(s.data_dir)) == ("0.0.0.0", 3111, "/tmp/somewhere")
    assert s.embedding_provider == "openai" and s.resolved_embedding_model == "text-embedding-3-small"
    assert s.openai_base_url == "http://embeddings:8080/v1"
    assert s.qdrant_url == "http://qdrant:6333"
    assert "secret" not in repr(s) and "sk-test" not in repr(s)


def test_defaults_are_zero_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in PRODUCTION_ENV:
        monkeypatch.delenv(key, raising=False)
    s = load_settings(_env_file=None)
    assert s.postgres_connection_string is None
    assert (s.mcp_host, s.mcp_port) == ("127.0.0.1", 3000)
    assert s.embedding_provider == "local" and s.resolved_embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert (s.rerank_initial_k, s.rerank_final_k, s.embedding_batch_size) == (150, 10, 100)
    assert s.use_unified_pipeline and s.enable_hybrid_search
    assert "mcp-web-ingest" in str(s.data_dir)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"MCP_PORT": "99999"}, "MCP_PORT"),
        ({"RERANK_FINAL_K": "0"}, "RERANK_FINAL_K"),
        ({"EMBEDDING_PROVIDER": "cohere"}, "EMBEDDING_PROVIDER"),
        ({"EMBEDDING_PROVIDER": "openai"}, "OPENAI_API_KEY"),
        ({"CHUNK_MAX_TOKENS": "64", "CHUNK_OVERLAP_TOKENS": "64"}, "CHUNK_OVERLAP_TOKENS"),
        ({"VECTOR_STORE": "qdrant"}, "QDRANT_URL"),
        ({"VECTOR_STORE": "qdrant", "QDRANT_URL": ":memory:", "QDRANT_QUANTIZATION": "pq"}, "QDRANT_QUANTIZATION"),
        ({"USE_UNIFIED_PIPELINE": "maybe"}, "USE_UNIFIED_PIPELINE"),
        ({"DB_POOL_MIN": "9", "DB_POOL_MAX": "2"}, "DB_POOL_MIN"),
        ({"METRICS_REQUIRE_AUTH": "true"}, "MCP_AUTH_TOKEN"),
        ({"MCP_AUTH_TOKEN": "too-short"}, "MCP_AUTH_TOKEN"),
        ({"ALLOWED_HOSTS": "10.0.0.0/99"}, "ALLOWED_HOSTS"),
        ({"QDRANT_COLLECTION": "no spaces allowed"}, "QDRANT_COLLECTION"),
    ],
)
def test_invalid_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str
) -> None:
    for key in ("OPENAI_API_KEY", "LLM_API_KEY", "MCP_AUTH_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    assert fragment in str(info.value)
    assert str(info.value).startswith("Invalid configuration")


def test_list_variables_take_commas_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_ALLOWED_HOSTS", "mcp.example.org, docs-proxy:8080,")
    monkeypatch.setenv("MCP_ALLOWED_ORIGINS", '["https://app.example"]')
    monkeypatch.setenv("ALLOWED_HOSTS", "Wiki.Internal, 10.0.0.0/8")
    monkeypatch.setenv("MCP_AUTH_TOKEN", "")
    s = load_settings(_env_file=None)
    assert s.mcp_allowed_hosts == ["mcp.example.org", "docs-proxy:8080"]
    assert s.mcp_allowed_origins == ["https://app.example"]
    assert s.allowed_hosts == ["wiki.internal", "10.0.0.0/8"]
    assert s.mcp_auth_token is None  # empty means no token, never "any token"
