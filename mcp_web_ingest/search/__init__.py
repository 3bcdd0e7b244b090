"""Retrieval: candidate legs, fusion, rerank, and the answer trimmed to its budget."""
