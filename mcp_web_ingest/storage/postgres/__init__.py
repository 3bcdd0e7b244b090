"""The PostgreSQL + pgvector store."""
