"""SPLADE + cross-encoder model runner (HTTP), the service side of SPLADE_URL and RERANKER_URL."""
