"""The web dashboard at /ui: sources, indexing with live crawl progress, a search playground and health."""

from mcp_web_ingest.interface.dashboard.routes import dashboard_routes

__all__ = ["dashboard_routes"]
