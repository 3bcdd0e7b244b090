"""Cross-encoder reranking: the Reranker boundary and the client of a TEI-compatible POST {RERANKER_URL}/rerank."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from mcp_web_ingest.encoders.service import CircuitBreaker, GuardedHttp, OutcomeCallback
from mcp_web_ingest.errors import InvalidInputError, RerankUnavailable

# TEI's default --max-client-batch-size: a request with more texts is refused with HTTP 413.
TEI_MAX_CLIENT_BATCH_SIZE = 32


class Reranker(Protocol):
    """Scores (query, text) pairs with a cross-encoder."""

    url: str  # where the service answers (shown by health)

    async def rerank(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, in input order (higher is more relevant)."""
        ...

    async def health(self) -> dict[str, Any]:
        """Component status for the health report."""
        ...

    async def aclose(self) -> None:
        """Release sessions."""
        ...


def clip(text: str, max_chars: int) -> str:
    """text cut to max_chars, at the last whitespace when one lies in the final fifth (no half words)."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space >= max_chars * 4 // 5 else cut


def _parse(payload: Any, expected: int) -> list[float]:
    scores: list[float | None] = [None] * expected
    for rank in payload:
        index = int(rank["index"])
        if not 0 <= index < expected or scores[index] is not None:
            raise ValueError(f"index {index} is out of range or repeated")
        scores[index] = float(rank["score"])
    if any(s is None for s in scores):
        raise ValueError(f"{sum(s is None for s in scores)} texts have no score")
    return [float(s) for s in scores if s is not None]


class TeiReranker:
    """Client of HuggingFace text-embeddings-inference's /rerank (or the model runner's): batches, clips, guards."""

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = TEI_MAX_CLIENT_BATCH_SIZE,
        max_chars: int = 2000,
        raw_scores: bool = False,
        max_concurrency: int = 4,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        retry_max_wait_s: float = 2.0,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        breaker: CircuitBreaker | None = None,
        on_outcome: OutcomeCallback | None = None,
    ) -> None:
        if batch_size < 1 or max_chars < 1 or max_concurrency < 1:
            raise ValueError("batch_size, max_chars and max_concurrency must be at least 1")
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.raw_scores = raw_scores
        self._limit = asyncio.Semaphore(max_concurrency)
        self._http = GuardedHttp(
            "reranker",
            self.url,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            retries=retries,
            retry_max_wait_s=retry_max_wait_s,
            breaker=breaker or CircuitBreaker("reranker", failure_threshold, reset_timeout_s),
            on_outcome=on_outcome,
            unavailable=RerankUnavailable,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding the service."""
        return self._http.breaker

    async def _batch(self, query: str, texts: list[str]) -> list[float]:
        # truncate=true lets the server cut to the model's window; clipping first bounds the bytes sent.
        body = {"query": query, "texts": texts, "truncate": True, "raw_scores": self.raw_scores, "return_text": False}
        async with self._limit:
            # A search waits on it: one attempt (a retry would double the wait); a failure keeps the fused order.
            return await self._http.post_json("/rerank", body, lambda p: _parse(p, len(texts)), attempts=1)

    async def rerank(self, query: str, texts: Sequence[str]) -> list[float]:
        """Scores of texts for query, in input order; batches run concurrently (at most max_concurrency)."""
        if not query.strip():
            raise InvalidInputError("Cannot rerank for an empty query")
        if not texts:
            return []
        q = clip(query, self.max_chars)
        clipped = [clip(t, self.max_chars) for t in texts]
        batches = [clipped[i : i + self.batch_size] for i in range(0, len(clipped), self.batch_size)]
        tasks = [asyncio.ensure_future(self._batch(q, b)) for b in batches]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            # One failed batch fails the call; do not leave the others running.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [score for batch in results for score in batch]

    async def health(self) -> dict[str, Any]:
        """Reachability of /health and the breaker state."""
        return await self._http.health()

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()
