"""The runtime: every long-lived resource (database, embedder, fetcher, metrics, pipeline), opened once and closed."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from mcp_web_ingest import __version__
from mcp_web_ingest.config import Settings
from mcp_web_ingest.crawl.jobs import JobStore
from mcp_web_ingest.crawl.manager import CrawlManager
from mcp_web_ingest.encoders.dense import Embedder, make_embedder
from mcp_web_ingest.encoders.rerank import Reranker
from mcp_web_ingest.encoders.splade import SparseEncoder
from mcp_web_ingest.errors import ConfigError, WebIngestError
from mcp_web_ingest.ingest.fetch import Fetcher, HttpFetcher
from mcp_web_ingest.interface.auth import guard
from mcp_web_ingest.legacy import LegacyPipeline
from mcp_web_ingest.metrics import Metrics
from mcp_web_ingest.pipeline import Pipeline, UnifiedPipeline
from mcp_web_ingest.storage.db import Database, redact_conninfo
from mcp_web_ingest.storage.migrate import migrate_up
from mcp_web_ingest.storage.postgres.store import PostgresStore

log = logging.getLogger(__name__)


def make_fetcher(settings: Settings, metrics: Metrics) -> Fetcher:
    """The built-in fetcher, behind the Crawl4AI service when CRAWL4AI_URL is set (falling back to it)."""
    direct = HttpFetcher(settings)
    if not settings.crawl4ai_url:
        return direct
    from mcp_web_ingest.ingest.crawl4ai_client import Crawl4AIFetcher

    return Crawl4AIFetcher(settings, direct, on_outcome=lambda o: metrics.crawl4ai_fetches.labels(o).inc())


def make_sparse(settings: Settings, metrics: Metrics) -> SparseEncoder | None:
    """The SPLADE client when SPLADE_URL is set and hybrid search is on."""
    if not settings.splade_url or not settings.enable_hybrid_search:
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


def make_store(settings: Settings, db: Database) -> PostgresStore:
    """PostgreSQL for everything (default), or PostgreSQL plus Qdrant for vectors when VECTOR_STORE=qdrant."""
    if settings.vector_store != "qdrant":
        return PostgresStore(db)
    try:
        from mcp_web_ingest.storage.qdrant.store import QdrantStore
    except ImportError as exc:  # qdrant-client is an optional extra
        raise ConfigError("VECTOR_STORE=qdrant needs the 'qdrant' extra: pip install 'mcp-web-ingest[qdrant]'") from exc
    return QdrantStore(db, settings)


def make_pipeline(
    settings: Settings,
    fetcher: Fetcher,
    embedder: Embedder,
    store: PostgresStore,
    metrics: Metrics,
    sparse: SparseEncoder | None = None,
    reranker: Reranker | None = None,
) -> Pipeline:
    """The one place where USE_UNIFIED_PIPELINE picks the pipeline."""
    if not settings.use_unified_pipeline:
        return LegacyPipeline(settings, fetcher, embedder, store, metrics)
    return UnifiedPipeline(settings, fetcher, embedder, store, metrics, sparse, reranker)


class Runtime:
    """Owns the resources the tools use; `open()` builds them in dependency order and closes them in reverse."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.db = Database(settings)
        self.store = make_store(settings, self.db)
        self.embedder: Embedder = make_embedder(settings, self.metrics.embedding_batch_duration.observe)
        self.fetcher = make_fetcher(settings, self.metrics)
        self.sparse = make_sparse(settings, self.metrics)
        self.reranker = make_reranker(settings, self.metrics)
        self.pipeline: Pipeline = make_pipeline(
            settings, self.fetcher, self.embedder, self.store, self.metrics, self.sparse, self.reranker
        )
        self.jobs = JobStore(self.db)
        self.crawler = CrawlManager(settings, self.store, self.jobs, self.pipeline, self.metrics)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, *, resume_jobs: bool = True) -> AsyncIterator[Runtime]:
        """Start the database (embedded or external), apply migrations, check the embedding space, start models.

        resume_jobs: pick up crawl jobs whose runner died (servers do; one-shot CLI commands need not).
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
            store_open = getattr(rt.store, "open", None)
            if store_open is not None:  # the Qdrant client
                await store_open()
                stack.push_async_callback(rt.store.aclose)  # type: ignore[attr-defined]
            await rt.store.ensure_embedding_space(rt.embedder.model_name, rt.embedder.dimension)
            stack.push_async_callback(rt.fetcher.aclose)
            for service in (rt.sparse, rt.reranker):
                if service is not None:
                    stack.push_async_callback(service.aclose)
            stack.push_async_callback(rt.crawler.aclose)
            if rt.sparse is not None and resume_jobs:
                backfill = asyncio.create_task(rt._backfill_sparse_forever(), name="sparse-backfill")
                stack.callback(backfill.cancel)
            if settings.metrics_port and resume_jobs:  # servers only, not one-shot CLI commands
                wrap = functools.partial(guard, settings=settings, bind_host=settings.mcp_host, metrics_only=True)
                await stack.enter_async_context(rt.metrics.serve(settings.mcp_host, settings.metrics_port, wrap))
                log.info("metrics on http://%s:%d/metrics", settings.mcp_host, settings.metrics_port)
            resumed = await rt.crawler.resume_orphans() if resume_jobs else []
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
        backfill = getattr(self.pipeline, "backfill_sparse", None)
        if backfill is None:
            return
        while True:
            try:
                filled = await backfill()
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
            await self.store.ping_database()
            counts = await self.store.counts()
            self.metrics.pages_stored.set(counts["pages"])
            self.metrics.chunks_stored.set(counts["chunks"])
            components["database"] = {
                "status": "ok",
                "embedded": self.db.embedded,
                "vector_store": self.settings.vector_store,
            }
        except WebIngestError as exc:
            components["database"] = {"status": "error", "embedded": self.db.embedded, "detail": str(exc)}
        if self.settings.vector_store == "qdrant":
            components["qdrant"] = await self._qdrant_health()
        components["embedder"] = await self.embedder.health()
        optional: dict[str, str | None] = {}
        for name, service in (("splade", self.sparse), ("reranker", self.reranker)):
            if service is not None:
                components[name] = await service.health()
                optional[name] = getattr(service, "url", None)
                if components[name].get("breaker", {}).get("state") == "open":
                    components[name]["status"] = "error"  # skipped by search until the breaker lets a probe through
        fetcher_health = getattr(self.fetcher, "health", None)
        if fetcher_health is not None:  # the Crawl4AI client: degraded while it falls back to the built-in fetcher
            components["crawl4ai"] = fetcher_health()
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

    async def _qdrant_health(self) -> dict[str, Any]:
        """Qdrant's status: reachable, points stored against chunks in PostgreSQL (a difference means run repair)."""
        from mcp_web_ingest.storage.qdrant.store import QdrantStore, _redact

        store = self.store
        assert isinstance(store, QdrantStore)
        info: dict[str, Any] = {
            "url": _redact(store.location),
            "mode": "local" if store.local else "server",
            "collection": store.name,
        }
        try:
            info["points"] = await store.point_count()
        except WebIngestError as exc:
            return {"status": "error", **info, "detail": str(exc)}
        return {"status": "ok", **info}


class RuntimeHolder:
    """Shares one Runtime among every MCP session of a process; opened on first use, closed after the last."""

    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        self.settings = settings
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
                    self.runtime = await stack.enter_async_context(Runtime.open(self.settings))
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
