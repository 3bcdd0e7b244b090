"""Settings of fetching and crawling, and the size and time limits."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Self

from pydantic import BaseModel, Field, field_validator, model_validator

from mcp_web_ingest.config.common import parse_span, split_list

# List fields are typed `list[str] | str`: the `| str` keeps pydantic-settings from JSON-decoding the variable, so
# "a.example, 10.0.0.0/8" reaches the splitting validator, which always turns it into a list.


class CrawlSettings(BaseModel):
    """Fetching and crawling: the HTTP client, its SSRF guard, how fast and how far crawls go."""

    user_agent: str = Field(
        default="mcp-web-ingest/0.1 (+https://github.com/mcp-web-ingest)", description="User-Agent of every fetch."
    )
    fetch_timeout_s: float = Field(default=30.0, gt=0, description="Time limit of one fetch (total and per read).")
    fetch_connect_timeout_s: float = Field(default=10.0, gt=0, description="Time limit of connecting for a fetch.")
    fetch_max_redirects: int = Field(
        default=10, ge=0, description="Redirects followed per fetch (each hop is checked by the SSRF guard)."
    )
    fetch_retries: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Attempts for transient failures (connect errors, 429, 5xx, honouring Retry-After).",
    )
    fetch_retry_max_wait_s: float = Field(
        default=30.0, ge=0, description="Longest wait between attempts; a longer Retry-After fails the fetch."
    )
    allow_private_networks: bool = Field(
        default=False,
        description="Allow fetching loopback, private and link-local addresses (SSRF guard off; local docs, tests).",
    )
    allowed_hosts: list[str] | str = Field(
        default_factory=list,
        description="Host names and CIDRs fetched even when private; comma separated or a JSON list.",
        examples=["127.0.0.1,10.1.0.0/16"],
    )
    prefer_markdown: bool = Field(
        default=True,
        description=(
            "Ask servers for Markdown first (Accept: text/markdown) and index a page's Markdown twin "
            '(<link rel="alternate" type="text/markdown">, same origin) in place of its HTML.'
        ),
    )
    auth_profiles_file: Path | None = Field(
        default=None,
        description=(
            "TOML file of named auth profiles (hosts + headers, cookies or basic auth) for private pages; "
            "index_web_page(auth_profile=...) and crawls use them. See docs/formats.md."
        ),
    )
    refresh_interval: str | None = Field(
        default=None,
        description=(
            "Refresh every indexed source this often by default (30m, 12h, 7d...); off unless set. "
            "index_web_page / refresh_source set a source's own interval."
        ),
        examples=["1d"],
    )
    refresh_check_s: float = Field(
        default=60.0, gt=0, description="How often the server looks for sources due for a scheduled refresh."
    )
    crawl_concurrency: int = Field(default=4, ge=1, le=64, description="Pages of one job processed at once.")
    crawl_per_host_concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight per host.")
    crawl_requests_per_second: float = Field(
        default=10.0, ge=0, description="Request starts per second per host (0 = no limit; robots crawl-delay wins)."
    )
    crawl_max_depth: int = Field(default=20, ge=0, description="Largest max_depth a crawl may ask for.")
    crawl_max_pages: int = Field(default=10000, ge=1, description="Largest max_pages a crawl may ask for.")
    crawl_max_concurrent_jobs: int = Field(default=4, ge=1, description="Crawl jobs running at once per process.")

    @field_validator("refresh_interval")
    @classmethod
    def _check_refresh_interval(cls, v: str | None) -> str | None:
        if v is not None and v.strip() and parse_span(v) is None:
            raise ValueError("REFRESH_INTERVAL must be a span such as 30m, 12h, 1d or 1w")
        return v.strip() or None if v is not None else None

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_allowed_hosts(cls, v: object) -> object:
        return split_list(v)

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, v: list[str] | str) -> list[str]:
        hosts = [v] if isinstance(v, str) else v
        for entry in hosts:
            if "/" in entry:
                ipaddress.ip_network(entry.strip().strip("[]"), strict=False)  # ValueError names the bad CIDR
        return [h.strip().lower() for h in hosts if h.strip()]


class LimitsSettings(BaseModel):
    """Limits on what one page or query may cost: sizes, chunking, chunk caps, the extraction time limit."""

    fetch_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest page accepted (decompressed bytes, streamed)."
    )
    chunk_max_tokens: int = Field(
        default=256, ge=32, le=8192, description="Chunk size (approximate word-piece tokens)."
    )
    chunk_overlap_tokens: int = Field(
        default=32, ge=0, description="Overlap of consecutive chunks (approximate tokens; below CHUNK_MAX_TOKENS)."
    )
    max_chunks_per_page: int = Field(
        default=2000, ge=1, description="A page that would make more chunks is refused with a clear error."
    )
    max_query_chars: int = Field(default=2000, ge=10, description="Longest search query accepted (characters).")
    extract_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Extracting one page (in a worker process) stops with an error after this; the worker is replaced.",
    )

    @model_validator(mode="after")
    def _check_chunks(self) -> Self:
        if self.chunk_overlap_tokens >= self.chunk_max_tokens:
            raise ValueError("CHUNK_OVERLAP_TOKENS must be smaller than CHUNK_MAX_TOKENS")
        return self


# The groups in the order .env.example and docs/configuration.md list them.
