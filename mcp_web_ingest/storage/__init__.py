"""PostgreSQL (catalog, pgvector, postings), optional Qdrant, migrations and backups."""
