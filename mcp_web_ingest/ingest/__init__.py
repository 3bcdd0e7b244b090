"""From a URL to chunks: guarded fetching, extraction to markdown, chunking, code symbols, indexing."""
