"""SPLADE sparse vectors: the SparseEncoder boundary and the HTTP client of SPLADE_URL."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal, Protocol

from mcp_web_ingest.encoders.service import CircuitBreaker, GuardedHttp, OutcomeCallback
from mcp_web_ingest.errors import InvalidInputError, SparseUnavailable
from mcp_web_ingest.models import SparseVec

SparseKind = Literal["query", "document"]


class SparseEncoder(Protocol):
    """Turns texts into SPLADE vectors."""

    url: str  # where the service answers (shown by health)

    async def encode(self, texts: Sequence[str], kind: SparseKind) -> list[SparseVec]:
        """One vector per text, in order; kind selects the query or document encoder."""
        ...

    async def start(self) -> None:
        """Begin loading whatever the encoder needs, without waiting for it."""
        ...

    async def health(self) -> dict[str, Any]:
        """Component status for the health report."""
        ...

    async def aclose(self) -> None:
        """Release sessions."""
        ...


def _parse(payload: Any, expected: int) -> tuple[list[SparseVec], str | None, int]:
    dim = int(payload["dim"])
    vectors = [
        SparseVec(tuple(int(i) for i in v["indices"]), tuple(float(x) for x in v["values"]), dim)
        for v in payload["vectors"]
    ]
    if len(vectors) != expected:
        raise ValueError(f"{len(vectors)} vectors for {expected} texts")
    return vectors, payload.get("model"), dim


class SpladeClient:
    """Client of the model runner's POST {SPLADE_URL}/sparse/batch, in batches, with retries and a circuit breaker."""

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 32,
        top_k: int | None = None,
        timeout_s: float = 30.0,
        query_timeout_s: float | None = None,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        retry_max_wait_s: float = 2.0,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        breaker: CircuitBreaker | None = None,
        on_outcome: OutcomeCallback | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.top_k = top_k
        self.model_name: str | None = None
        self.dim: int | None = None
        self.query_timeout_s = query_timeout_s
        self._http = GuardedHttp(
            "splade",
            self.url,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            retries=retries,
            retry_max_wait_s=retry_max_wait_s,
            breaker=breaker or CircuitBreaker("splade", failure_threshold, reset_timeout_s),
            on_outcome=on_outcome,
            unavailable=SparseUnavailable,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding the service."""
        return self._http.breaker

    async def encode(self, texts: Sequence[str], kind: SparseKind = "document") -> list[SparseVec]:
        """SPLADE vectors of texts, requested batch_size at a time (a batch that fails fails the whole call)."""
        if kind not in ("query", "document"):
            raise InvalidInputError(f"kind must be 'query' or 'document' (got {kind!r})")
        if any(not t.strip() for t in texts):
            raise InvalidInputError("Cannot compute a SPLADE vector of an empty text")
        out: list[SparseVec] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            body: dict[str, Any] = {"texts": batch, "kind": kind}
            if self.top_k is not None:
                body["top_k"] = self.top_k
            parse = partial(_parse, expected=len(batch))
            if kind == "query":  # a search waits on it: one attempt, a short timeout, then the leg is skipped
                call = self._http.post_json("/sparse/batch", body, parse, timeout_s=self.query_timeout_s, attempts=1)
            else:
                call = self._http.post_json("/sparse/batch", body, parse)
            vectors, model, dim = await call
            self.model_name, self.dim = model, dim
            out.extend(vectors)
        return out

    async def encode_query(self, text: str) -> SparseVec:
        """The query vector of one text."""
        return (await self.encode([text], "query"))[0]

    async def start(self) -> None:
        """Nothing to load: the service runs on its own."""

    async def health(self) -> dict[str, Any]:
        """Reachability of /health and the breaker state."""
        return {**await self._http.health(), "model": self.model_name, "dim": self.dim}

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()
