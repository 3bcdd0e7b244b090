"""One search, checked once where it enters (MCP tool, CLI, tools) and passed down unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

from mcp_web_ingest.config import Settings
from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.ingest.versions import validate_version_request
from mcp_web_ingest.storage.records import validate_collection

SearchMode = Literal["hybrid", "dense", "lexical", "sparse"]
MODES: tuple[SearchMode, ...] = get_args(SearchMode)
MAX_K = 100
MIN_MAX_CHARS, MAX_MAX_CHARS = 200, 200_000
MAX_SYMBOL_CHARS = 200


@dataclass(frozen=True)
class SearchRequest:
    """A valid search: build it with `SearchRequest.create`, which checks every argument and fills the defaults."""

    query: str  # stripped, without NUL (PostgreSQL text cannot hold it)
    k: int
    collection: str | None  # a valid collection name; None searches every collection
    url_prefix: str | None
    mode: SearchMode | None  # None: the pipeline's default mode
    max_chars: int
    rerank: bool  # asked for; the pipeline reranks only when it has a reranker
    symbol: str | None
    version: str | None = None  # a label, an x-range or specifier set, "latest" (None: latest) or "all"

    @classmethod
    def create(
        cls,
        settings: Settings,
        query: str,
        k: int | None = None,
        collection: str | None = None,
        url_prefix: str | None = None,
        mode: str | None = None,
        max_chars: int | None = None,
        rerank: bool | None = None,
        symbol: str | None = None,
        version: str | None = None,
    ) -> SearchRequest:
        """Check and normalise search arguments, with messages that say what to change; defaults from settings."""
        query = (query or "").replace("\x00", " ").strip()
        if not query:
            raise InvalidInputError("The query is empty: describe what you are looking for in a few words")
        if len(query) > settings.max_query_chars:
            raise InvalidInputError(
                f"The query is {len(query)} characters long; the limit is {settings.max_query_chars}. "
                "Shorten it to the key terms or question"
            )
        k = settings.rerank_final_k if k is None else k
        if not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k must be between 1 and {MAX_K} (got {k})")
        max_chars = settings.search_max_chars if max_chars is None else max_chars
        if not MIN_MAX_CHARS <= max_chars <= MAX_MAX_CHARS:
            raise InvalidInputError(f"max_chars must be between {MIN_MAX_CHARS} and {MAX_MAX_CHARS} (got {max_chars})")
        if mode is not None and mode not in MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
        symbol = (symbol or "").strip() or None
        if symbol is not None and len(symbol) > MAX_SYMBOL_CHARS:
            raise InvalidInputError(f"symbol is too long ({MAX_SYMBOL_CHARS} characters at most)")
        # Both reach SQL as parameters; PostgreSQL text cannot hold NUL.
        for name, value in (("url_prefix", url_prefix), ("symbol", symbol)):
            if value is not None and "\x00" in value:
                raise InvalidInputError(f"{name} contains a NUL character; remove it")
        return cls(
            query=query,
            k=k,
            collection=validate_collection(collection) if collection else None,
            url_prefix=url_prefix or None,
            mode=cast("SearchMode | None", mode),  # checked against MODES above
            max_chars=max_chars,
            rerank=settings.enable_reranking if rerank is None else rerank,
            symbol=symbol,
            version=validate_version_request(version) if version and version.strip() else None,
        )
