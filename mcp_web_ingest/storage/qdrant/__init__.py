"""The Qdrant vector store (VECTOR_STORE=qdrant)."""
