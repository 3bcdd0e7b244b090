"""Indexing one page: fetch → extract → chunk → embed → store, incremental (unchanged pages are not re-embedded)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from mcp_web_ingest.config import Settings
from mcp_web_ingest.encoders.dense import Embedder
from mcp_web_ingest.encoders.splade import SparseEncoder
from mcp_web_ingest.errors import ExtractError, FetchError, ServiceError, WebIngestError
from mcp_web_ingest.ingest.auth_profiles import RequestAuth
from mcp_web_ingest.ingest.extract_worker import extract_document_isolated
from mcp_web_ingest.ingest.fetch import Fetcher
from mcp_web_ingest.ingest.formats import Extraction
from mcp_web_ingest.ingest.symbols import extract_page_symbols
from mcp_web_ingest.ingest.twins import read_markdown_twin
from mcp_web_ingest.ingest.urls import normalize_url, split_credentials, validate_url
from mcp_web_ingest.ingest.versions import clean_label, detect_version
from mcp_web_ingest.metrics import Metrics
from mcp_web_ingest.models import Chunk, ExtractedPage, FetchedPage, SparseVec, Symbol
from mcp_web_ingest.outcomes import IndexOutcome, Stopwatch
from mcp_web_ingest.storage.interfaces import Store
from mcp_web_ingest.storage.records import PageRecord, StoredPage, validate_collection

log = logging.getLogger(__name__)
ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]
Chunker = Callable[[ExtractedPage, int, int], list[Chunk]]  # (page, max tokens, overlap tokens) -> chunks


def _extract(fetched: FetchedPage, timeout_s: float) -> Extraction:
    """The document's pages and outgoing links, in a worker process that is killed past ``timeout_s``."""
    return extract_document_isolated(fetched.format, fetched.final_url, timeout_s, text=fetched.text, data=fetched.body)


class Indexer:
    """Indexes pages with one chunker, writing chunks tagged with the pipeline's name; symbols and SPLADE optional."""

    def __init__(
        self,
        settings: Settings,
        fetcher: Fetcher,
        embedder: Embedder,
        store: Store,
        metrics: Metrics,
        *,
        name: str,
        chunker: Chunker,
        extract_symbols: bool,
        sparse: SparseEncoder | None,
    ) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.embedder = embedder
        self.store = store
        self.metrics = metrics
        self.name = name  # recorded on every chunk written
        self.chunker = chunker
        self.extract_symbols = extract_symbols
        self.sparse = sparse

    def chunk(self, page: ExtractedPage) -> list[Chunk]:
        """Split a page into chunks with this indexer's chunker and the CHUNK_* sizes."""
        return self.chunker(page, self.settings.chunk_max_tokens, self.settings.chunk_overlap_tokens)

    async def index_page(
        self,
        url: str,
        collection: str | None = None,
        progress: ProgressFn | None = None,
        *,
        force: bool = False,
        skip_duplicates: bool = False,
        auth: RequestAuth | None = None,
        version: str | None = None,
    ) -> IndexOutcome:
        """Index one page; an unchanged page (304, or the same content hash) is not embedded again.

        force: fetch unconditionally and re-chunk even when the content is unchanged.
        skip_duplicates: do not store a page whose content is identical to another page of the collection.
        auth: credentials for this fetch (an auth profile); credentials written in the URL itself take their place.
        Either way they are sent only where they apply and never stored or shown.
        version: the documentation version the page belongs to; without it, the one its URL names (/3.11/, /v5/).
        """
        collection = validate_collection(collection)
        url, in_url = split_credentials(validate_url(url))
        url = normalize_url(url)
        auth = RequestAuth.for_url(url, in_url) if in_url is not None else auth
        if auth is not None:
            auth.require_for(url)
        label = (clean_label(version), "given") if version else (detect_version(url), "url")
        watch = Stopwatch()
        started = time.perf_counter()
        try:
            outcome = await self._index(url, collection, watch, progress, force, skip_duplicates, auth, label)
        except WebIngestError:
            self.metrics.pages_indexed.labels("failed").inc()
            raise
        self.metrics.pages_indexed.labels("unchanged" if outcome.unchanged else "indexed").inc()
        self.metrics.index_duration.observe(time.perf_counter() - started)
        return outcome

    async def _report(self, progress: ProgressFn | None, step: float, message: str) -> None:
        if progress is not None:
            await progress(step, 4, message)

    async def _index(
        self,
        url: str,
        collection: str,
        watch: Stopwatch,
        progress: ProgressFn | None,
        force: bool,
        skip_duplicates: bool,
        auth: RequestAuth | None,
        label: tuple[str | None, str],
    ) -> IndexOutcome:
        await self._report(progress, 0, f"fetching {url}")
        previous = None if force else await self.store.catalog.get_page(collection, url)
        try:
            if previous is not None:
                validators = {"etag": previous.etag, "last_modified": previous.last_modified}
                fetched = await self.fetcher.fetch(url, **validators, auth=auth)
            else:
                fetched = await self.fetcher.fetch(url, auth=auth)
        except FetchError as exc:
            self.metrics.observe_fetch(exc.status)
            raise
        self.metrics.observe_fetch(fetched.status)
        watch.lap("fetch")
        if fetched.status == 304 and previous is not None:
            await self.store.catalog.touch_page(
                previous.id, fetched.etag, fetched.last_modified, 304, fetched.final_url, label
            )
            return IndexOutcome(
                previous.id,
                previous.url,
                previous.title,
                previous.chunk_count,
                True,
                collection,
                timings_ms=watch.total(),
                change="unchanged",
                links=(),
            )
        return await self.index_fetched(
            fetched, collection, watch, progress, force, skip_duplicates, previous, auth=auth, label=label
        )

    async def index_fetched(
        self,
        fetched: FetchedPage,
        collection: str,
        watch: Stopwatch | None = None,
        progress: ProgressFn | None = None,
        force: bool = False,
        skip_duplicates: bool = False,
        previous: StoredPage | None = None,
        *,
        auth: RequestAuth | None = None,
        label: tuple[str | None, str] | None = None,
    ) -> IndexOutcome:
        """Extract, chunk, embed and store a document that has already been fetched.

        previous: the stored row of the URL that was fetched, when the caller already read it (saves a query).
        auth: what the fetch was sent with; a Markdown twin is fetched with it too.
        label: (version, how it was found); default: the one the final URL names.
        """
        label = label or (detect_version(fetched.final_url), "url")
        watch = watch or Stopwatch()
        await self._report(progress, 1, "extracting")
        # Parsing a large page takes tens of milliseconds of pure CPU, a hostile one far more: keep it off the
        # event loop, in a process that the time limit can stop.
        found = await asyncio.to_thread(_extract, fetched, self.settings.extract_timeout_s)
        page, content_format, content_url = found.page, fetched.format, None
        if page.markdown_twin and fetched.format == "html" and self.settings.prefer_markdown:
            twin = await read_markdown_twin(self.fetcher, page, fetched.final_url, self.settings, auth)
            if twin is not None:
                page, content_format, content_url = twin.page, "markdown", twin.url
        watch.lap("extract")
        outcome = await self._store_extracted(
            fetched,
            page,
            found.links,
            collection,
            watch,
            progress,
            force,
            skip_duplicates,
            previous,
            content_format=content_format,
            content_url=content_url,
            label=label,
        )
        if not found.parts:
            return outcome
        given = label if label[1] == "given" else None  # a version given for the file holds for its pages
        carried = [
            await self._store_carried(url, part, outcome.url, fetched, collection, force, given)
            for url, part in found.parts
        ]
        return replace(outcome, carried=tuple(url for url in carried if url))

    async def _store_carried(
        self,
        url: str,
        page: ExtractedPage,
        source: str,
        fetched: FetchedPage,
        collection: str,
        force: bool,
        label: tuple[str | None, str] | None,
    ) -> str | None:
        """Store a page an llms-full.txt carries, unless its URL holds a page read from elsewhere (that one wins).

        A part that cannot be stored (too many chunks, no text) is left out with a warning: the file's other pages
        are no less good for it.
        """
        key = normalize_url(url)
        existing = await self.store.catalog.get_page(collection, key)
        if existing is not None and existing.content_url != source:
            return None
        part = FetchedPage(
            url=key,
            final_url=key,
            status=fetched.status,
            content_type=fetched.content_type,
            text="",
            encoding="",
            format=fetched.format,
        )
        try:
            outcome = await self._store_extracted(
                part,
                page,
                (),
                collection,
                Stopwatch(),
                None,
                force,
                False,
                existing,
                content_format=fetched.format,
                content_url=source,
                label=label or (detect_version(key), "url"),
            )
        except ExtractError as exc:
            log.warning("%s: the part for %s was not stored: %s", source, key, exc)
            return None
        return outcome.url

    async def _store_extracted(
        self,
        fetched: FetchedPage,
        page: ExtractedPage,
        links: tuple[str, ...],
        collection: str,
        watch: Stopwatch,
        progress: ProgressFn | None,
        force: bool,
        skip_duplicates: bool,
        previous: StoredPage | None,
        *,
        content_format: str,
        content_url: str | None,
        label: tuple[str | None, str],
    ) -> IndexOutcome:
        """Chunk, embed and store an extracted page, unless its content is unchanged or a duplicate."""
        key = normalize_url(fetched.final_url)
        record = PageRecord(
            url=key,
            title=page.title,
            content_hash=page.content_hash,
            pipeline=self.name,
            final_url=fetched.final_url,
            canonical_url=page.canonical_url,
            description=page.description,
            language=page.language,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            http_status=fetched.status,
            sections=page.sections,
            content_format=content_format,
            content_url=content_url,
            version=label[0],
            version_source=label[1] if label[0] else None,
        )
        if previous is not None and previous.url == key:
            existing: StoredPage | None = previous
        else:
            existing = await self.store.catalog.get_page(collection, key)

        def skipped(page_id: int, title: str, chunk_count: int, change: str, **extra: Any) -> IndexOutcome:
            """The outcome of a page that was not (re-)stored."""
            return IndexOutcome(
                page_id, key, title, chunk_count, True, collection, timings_ms=watch.total(), change=change,
                links=links, **extra,
            )  # fmt: skip

        if existing is not None and existing.content_hash == record.content_hash and not force:
            await self.store.catalog.touch_page(
                existing.id, fetched.etag, fetched.last_modified, fetched.status, fetched.final_url, label
            )
            watch.lap("store")
            return skipped(
                existing.id, existing.title, existing.chunk_count, "unchanged", canonical_url=page.canonical_url,
                content_format=content_format, content_url=content_url,
            )  # fmt: skip
        if skip_duplicates and existing is None and page.canonical_url:
            # Crawls index a page under its canonical URL only: the canonical one is fetched on its own.
            with contextlib.suppress(WebIngestError):
                canonical = normalize_url(page.canonical_url)
                if canonical != key:
                    return skipped(0, page.title, 0, "canonical", duplicate_of=canonical, canonical_url=canonical)
        if skip_duplicates and existing is None:
            twin = await self.store.catalog.find_page_by_hash(collection, record.content_hash, exclude_url=key)
            if twin is not None:
                return skipped(
                    twin.id, twin.title, 0, "duplicate", duplicate_of=twin.url, canonical_url=page.canonical_url
                )
        chunks = await asyncio.to_thread(self.chunk, page)
        if not chunks:
            raise ExtractError(f"The page at {key} has no text to index after extraction")
        if len(chunks) > self.settings.max_chunks_per_page:
            raise ExtractError(
                f"The page at {key} would make {len(chunks)} chunks, more than MAX_CHUNKS_PER_PAGE="
                f"{self.settings.max_chunks_per_page}; raise the limit to index it"
            )
        watch.lap("chunk")
        await self._report(progress, 2, f"embedding {len(chunks)} chunks")
        known = await self.store.catalog.vectors_by_hash([c.content_hash for c in chunks])
        todo = [c for c in chunks if c.content_hash not in known]
        fresh = await self.embedder.embed_documents([c.embed_text for c in todo])
        by_hash = {**known, **{c.content_hash: v for c, v in zip(todo, fresh, strict=True)}}
        vectors = [by_hash[c.content_hash] for c in chunks]
        watch.lap("embed")
        sparse = await self._sparse_vectors(chunks)
        watch.lap("sparse")
        symbols = await asyncio.to_thread(self.symbols, chunks)
        await self._report(progress, 3, "storing")
        page_id = await self.store.replace_page(collection, record, chunks, vectors, sparse, symbols)
        watch.lap("store")
        self.metrics.chunks_generated.inc(len(chunks))
        self.metrics.chunks_reused.inc(len(chunks) - len(todo))
        await self._report(progress, 4, "done")
        return IndexOutcome(
            page_id,
            key,
            page.title,
            len(chunks),
            False,
            collection,
            len(chunks) - len(todo),
            watch.total(),
            change="added" if existing is None else "changed",
            links=links,
            canonical_url=page.canonical_url,
            content_format=content_format,
            content_url=content_url,
        )

    def symbols(self, chunks: list[Chunk]) -> list[list[Symbol]] | None:
        """Code symbols per chunk (when this indexer extracts them and ENABLE_SYMBOL_EXTRACTION), or None."""
        wanted = self.extract_symbols and self.settings.enable_symbol_extraction
        return extract_page_symbols(chunks) if wanted else None

    async def _sparse_vectors(self, chunks: list[Chunk]) -> list[SparseVec] | None:
        """SPLADE vectors of the chunks, or None when SPLADE is off or failing (the page is back-filled later)."""
        if self.sparse is None:
            return None
        try:
            return await self.sparse.encode([c.embed_text for c in chunks], "document")
        except ServiceError as exc:
            log.warning("storing without SPLADE vectors (back-filled later): %s", exc)
            return None

    async def backfill_sparse(self, batch: int = 64) -> int:
        """Add SPLADE postings to chunks stored while SPLADE was down; returns how many were filled."""
        if self.sparse is None:
            return 0
        done = 0
        while rows := await self.store.index.chunks_missing_sparse(batch):
            texts = [f"{context}\n\n{text}" if context else text for _, context, text in rows]
            vectors = await self.sparse.encode(texts, "document")
            done += await self.store.index.set_sparse([r[0] for r in rows], vectors)
        return done
