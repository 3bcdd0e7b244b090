"""mcp-web-ingest: an MCP server that indexes web pages and searches them with hybrid retrieval."""

__version__ = "0.1.0"
