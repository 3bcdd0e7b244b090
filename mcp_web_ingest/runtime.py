"""The runtime: every long-lived resource (database, embedder, fetcher, metrics, pipeline), opened once and closed."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.types import ASGIApp

from mcp_web_ingest import __version__
from mcp_web_ingest.config import Settings
from mcp_web_ingest.crawl.jobs import JobStore
from mcp_web_ingest.crawl.manager import CrawlManager
from mcp_web_ingest.crawl.schedule import Scheduler, ScheduleStore
from mcp_web_ingest.encoders.dense import Embedder, LocalEmbedder, OpenAIEmbedder
from mcp_web_ingest.encoders.rerank import Reranker
from mcp_web_ingest.encoders.splade import SparseEncoder
from mcp_web_ingest.errors import ConfigError, WebIngestError
from mcp_web_ingest.ingest.auth_profiles import load_auth_profiles
from mcp_web_ingest.ingest.fetch import Fetcher, HttpFetcher
from mcp_web_ingest.legacy import LEGACY
from mcp_web_ingest.metrics import Metrics
from mcp_web_ingest.pipeline import UNIFIED, Pipeline, PolicyPipeline
from mcp_web_ingest.storage.db import Database, redact_conninfo
from mcp_web_ingest.storage.interfaces import Directory, Store
from mcp_web_ingest.storage.migrate import migrate_up
from mcp_web_ingest.storage.postgres.catalog import PostgresCatalog
from mcp_web_ingest.storage.postgres.directory import PostgresDirectory
from mcp_web_ingest.storage.postgres.index import PgVectorIndex
from mcp_web_ingest.storage.store import IndexedStore

log = logging.getLogger(__name__)

MetricsGuard = Callable[[ASGIApp], ASGIApp]  # the interface's auth and Host checks, wrapped around the METRICS_PORT app


def _require_onnxruntime(message: str) -> None:
    """ConfigError(message) unless onnxruntime is installed; found, not imported (the model thread imports it)."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError(message)


def make_embedder(settings: Settings, observe_batch: Any = None) -> Embedder:
    """The embedder EMBEDDING_PROVIDER selects."""
    if settings.embedding_provider == "openai":
        return OpenAIEmbedder(settings, observe_batch)
    if settings.embedding_backend != "torch":
        _require_onnxruntime(
            f"EMBEDDING_BACKEND={settings.embedding_backend} needs onnxruntime: pip install 'mcp-web-ingest[local]', "
            "or set EMBEDDING_BACKEND=torch"
        )
        from mcp_web_ingest.encoders.onnx import OnnxEmbedder

        return OnnxEmbedder(settings, observe_batch, quantize=settings.embedding_backend == "onnx-int8")
    return LocalEmbedder(settings, observe_batch)


def make_fetcher(settings: Settings, metrics: Metrics) -> Fetcher:
    """The built-in fetcher, behind the Crawl4AI service when CRAWL4AI_URL is set (falling back to it)."""
    direct = HttpFetcher(settings)
    if not settings.crawl4ai_url:
        return direct
    from mcp_web_ingest.ingest.crawl4ai_client import Crawl4AIFetcher

    return Crawl4AIFetcher(settings, direct, on_outcome=lambda o: metrics.crawl4ai_fetches.labels(o).inc())


def make_sparse(settings: Settings, metrics: Metrics) -> SparseEncoder | None:
    """SPLADE when hybrid search is on: the SPLADE_URL client, or SPLADE_MODEL_DIR in-process (ONNX Runtime)."""
    if not settings.enable_hybrid_search:
        return None
    if settings.splade_model_dir is not None:
        model_dir = settings.splade_model_dir.expanduser()
        if not (model_dir / "tokenizer.json").is_file():
            raise ConfigError(f"SPLADE_MODEL_DIR={model_dir} is not a model folder (no tokenizer.json)")
        _require_onnxruntime("SPLADE_MODEL_DIR needs onnxruntime: pip install 'mcp-web-ingest[local]'")
        from mcp_web_ingest.encoders.splade_local import LocalSpladeEncoder

        return LocalSpladeEncoder(
            model_dir,
            cache_dir=settings.resolved_model_cache_dir,  # beside the ONNX exports of the dense model
            quantize=settings.splade_quantize,
            top_k=settings.splade_top_k,
            batch_size=settings.splade_batch_size,
            query_timeout_s=settings.splade_query_timeout_s,
        )
    if not settings.splade_url:
        return None
    from mcp_web_ingest.encoders.splade import SpladeClient

    return SpladeClient(
        settings.splade_url,
        batch_size=settings.splade_batch_size,
        top_k=settings.splade_top_k,
        timeout_s=settings.splade_timeout_s,
        query_timeout_s=settings.splade_query_timeout_s,
        retries=settings.model_service_retries,
        failure_threshold=settings.breaker_failure_threshold,
        reset_timeout_s=settings.breaker_reset_timeout_s,
        on_outcome=lambda o: metrics.splade_requests.labels(o).inc(),
    )


def make_reranker(settings: Settings, metrics: Metrics) -> Reranker | None:
    """The TEI /rerank client when RERANKER_URL is set and reranking is enabled."""
    if not settings.reranker_url or not settings.enable_reranking:
        return None
    from mcp_web_ingest.encoders.rerank import TeiReranker

    return TeiReranker(
        settings.reranker_url,
        batch_size=settings.rerank_batch_size,
        max_chars=settings.rerank_max_chars,
        timeout_s=settings.reranker_timeout_s,
        retries=settings.model_service_retries,
        failure_threshold=settings.breaker_failure_threshold,
        reset_timeout_s=settings.breaker_reset_timeout_s,
        on_outcome=lambda o: metrics.rerank_requests.labels(o).inc(),
    )


def make_store(settings: Settings, db: Database) -> Store:
    """The PostgreSQL catalog with its vector index: pgvector + postings (default), or Qdrant (VECTOR_STORE=qdrant)."""
    catalog = PostgresCatalog(db)
    if settings.vector_store != "qdrant":
        return IndexedStore(catalog, PgVectorIndex(db))
    try:
        import qdrant_client  # noqa: F401 - the optional extra, imported only when it is chosen
    except ImportError as exc:
        raise ConfigError("VECTOR_STORE=qdrant needs the 'qdrant' extra: pip install 'mcp-web-ingest[qdrant]'") from exc
    from mcp_web_ingest.storage.qdrant.index import QdrantIndex

    return IndexedStore(catalog, QdrantIndex(catalog, settings))


def make_pipeline(
    settings: Settings,
    fetcher: Fetcher,
    embedder: Embedder,
    store: Store,
    metrics: Metrics,
    sparse: SparseEncoder | None = None,
    reranker: Reranker | None = None,
) -> Pipeline:
    """The one place where USE_UNIFIED_PIPELINE picks the pipeline's policy."""
    policy = UNIFIED if settings.use_unified_pipeline else LEGACY
    return PolicyPipeline(settings, fetcher, embedder, store, metrics, sparse, reranker, policy=policy)


class Runtime:
    """Owns the resources the tools use; `open()` builds them in dependency order and closes them in reverse."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.db = Database(settings)
        self.store = make_store(settings, self.db)
        self.directory: Directory = PostgresDirectory(self.db)  # pages live in PostgreSQL with either vector store
        self.embedder: Embedder = make_embedder(settings, self.metrics.embedding_batch_duration.observe)
        self.fetcher = make_fetcher(settings, self.metrics)
        self.sparse = make_sparse(settings, self.metrics)
        self.reranker = make_reranker(settings, self.metrics)
        self.pipeline: Pipeline = make_pipeline(
            settings, self.fetcher, self.embedder, self.store, self.metrics, self.sparse, self.reranker
        )
        self.jobs = JobStore(self.db)
        profiles = load_auth_profiles(settings.auth_profiles_file)  # a bad file is a ConfigError at start-up
        self.crawler = CrawlManager(settings, self.store, self.jobs, self.pipeline, self.metrics, profiles)
        self.scheduler = Scheduler(
            ScheduleStore(self.db), self.crawler, self.metrics, settings.refresh_check_s, settings.refresh_interval
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, settings: Settings, *, resume_jobs: bool = True, metrics_guard: MetricsGuard | None = None
    ) -> AsyncIterator[Runtime]:
        """Start the database (embedded or external), apply migrations, check the embedding space, start models.

        resume_jobs: pick up crawl jobs whose runner died (servers do; one-shot CLI commands need not).
        metrics_guard: the interface's HTTP guard; given one, a server also serves /metrics on METRICS_PORT behind it.
        """
        rt = cls(settings)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(rt.metrics.watch_loop_lag())  # event_loop_lag_seconds on /metrics
            stack.push_async_callback(rt.db.aclose)
            conninfo = await rt.db.resolve_conninfo()
            applied = await asyncio.to_thread(migrate_up, conninfo)
            if applied:
                log.info("applied migrations: %s", ", ".join(f"{m.version:04d}_{m.name}" for m in applied))
            await rt.db.open()
            stack.push_async_callback(rt.embedder.aclose)
            await rt.embedder.start()
            await rt.store.open()  # the Qdrant client; nothing for pgvector
            stack.push_async_callback(rt.store.aclose)
            await rt.store.ensure_embedding_space(rt.embedder.model_name, rt.embedder.dimension)
            stack.push_async_callback(rt.fetcher.aclose)
            for service in (rt.sparse, rt.reranker):
                if service is not None:
                    stack.push_async_callback(service.aclose)
            if rt.sparse is not None:
                await rt.sparse.start()  # in-process SPLADE loads (exports once) in the background
            stack.push_async_callback(rt.crawler.aclose)
            if rt.sparse is not None and resume_jobs:
                backfill = asyncio.create_task(rt._backfill_sparse_forever(), name="sparse-backfill")
                stack.callback(backfill.cancel)
            if settings.metrics_port and resume_jobs and metrics_guard is not None:  # servers, not one-shot commands
                serving = rt.metrics.serve(settings.mcp_host, settings.metrics_port, metrics_guard)
                await stack.enter_async_context(serving)
                log.info("metrics on http://%s:%d/metrics", settings.mcp_host, settings.metrics_port)
            resumed = await rt.crawler.resume_orphans() if resume_jobs else []
            if resume_jobs:  # servers run scheduled refreshes; one-shot commands leave them to the servers
                scheduling = asyncio.create_task(rt.scheduler.run_forever(), name="scheduled-refresh")
                stack.callback(scheduling.cancel)
            if resumed:
                log.info("resuming crawl jobs: %s", ", ".join(resumed))
            log.info(
                "ready: pipeline=%s database=%s embedder=%s",
                rt.pipeline.name,
                "embedded" if rt.db.embedded else redact_conninfo(conninfo),
                rt.embedder.model_name,
            )
            yield rt

    async def _backfill_sparse_forever(self) -> None:
        """Give chunks stored while SPLADE was down their postings, once it answers again."""
        while True:
            try:
                filled = await self.pipeline.backfill_sparse()
                if filled:
                    log.info("back-filled SPLADE vectors of %d chunks", filled)
            except WebIngestError as exc:
                log.debug("SPLADE back-fill postponed: %s", exc)
            await asyncio.sleep(self.settings.sparse_backfill_interval_s)

    async def health(self) -> dict[str, Any]:
        """Status of every component; overall 'ok', 'degraded' (optional service down) or 'error' (core down)."""
        components: dict[str, Any] = {}
        counts: dict[str, int] = {}
        try:
            await self.store.catalog.ping()
            counts = await self.store.catalog.counts()
            self.metrics.pages_stored.set(counts["pages"])
            self.metrics.chunks_stored.set(counts["chunks"])
            components["database"] = {
                "status": "ok",
                "embedded": self.db.embedded,
                "vector_store": self.settings.vector_store,
            }
        except WebIngestError as exc:
            components["database"] = {"status": "error", "embedded": self.db.embedded, "detail": str(exc)}
        components.update(await self.store.index.health())  # an index outside the database reports itself
        components["embedder"] = await self.embedder.health()
        optional: dict[str, str | None] = {}
        for name, service in (("splade", self.sparse), ("reranker", self.reranker)):
            if service is not None:
                components[name] = await service.health()
                optional[name] = service.url
                if components[name].get("breaker", {}).get("state") == "open":
                    components[name]["status"] = "error"  # skipped by search until the breaker lets a probe through
        fetcher_health = self.fetcher.health()
        if fetcher_health is not None:  # the Crawl4AI client: degraded while it falls back to the built-in fetcher
            components["crawl4ai"] = fetcher_health
            optional["crawl4ai"] = self.settings.crawl4ai_url
        core = ("database", "embedder", "qdrant")
        core_bad = any(components[c]["status"] == "error" for c in core if c in components)
        optional_bad = any(components[c]["status"] != "ok" for c in optional if c in components)
        status = "error" if core_bad else ("degraded" if optional_bad else "ok")
        return {
            "status": status,
            "version": __version__,
            "pipeline": self.pipeline.name,
            "components": components,
            "counts": counts,
            "embedding": {"model": self.embedder.model_name, "dimension": self.embedder.dimension},
        }


class RuntimeHolder:
    """Shares one Runtime among every MCP session of a process; opened on first use, closed after the last."""

    def __init__(
        self, settings: Settings, runtime: Runtime | None = None, *, metrics_guard: MetricsGuard | None = None
    ) -> None:
        self.settings = settings
        self._metrics_guard = metrics_guard  # passed on to Runtime.open: METRICS_PORT is served behind it
        # A runtime passed in is owned by the caller: it counts as one permanent user and is never closed here.
        self._users = 1 if runtime is not None else 0
        self._lock = asyncio.Lock()
        self._stack: contextlib.AsyncExitStack | None = None
        self.runtime: Runtime | None = runtime

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Runtime]:
        """Use the shared runtime for the duration of the block."""
        async with self._lock:
            if self.runtime is None:
                stack = contextlib.AsyncExitStack()
                try:
                    self.runtime = await stack.enter_async_context(
                        Runtime.open(self.settings, metrics_guard=self._metrics_guard)
                    )
                except BaseException:
                    await stack.aclose()
                    raise
                self._stack = stack
            self._users += 1
            runtime = self.runtime
        try:
            yield runtime
        finally:
            async with self._lock:
                self._users -= 1
                if self._users == 0 and self._stack is not None:
                    stack, self._stack, self.runtime = self._stack, None, None
                    await stack.aclose()
