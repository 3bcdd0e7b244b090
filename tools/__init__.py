"""Helper tools and services of mcp-web-ingest (not installed with the package)."""
