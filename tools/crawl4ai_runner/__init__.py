"""Crawl4AI runner: the HTTP service behind CRAWL4AI_URL (POST /crawl, GET /health)."""
