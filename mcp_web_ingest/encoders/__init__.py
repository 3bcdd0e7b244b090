"""Models and model services: dense embedders, SPLADE and reranker clients, the guarded HTTP client."""
