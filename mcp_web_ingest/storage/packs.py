"""Portable packs: a collection (pages, sections, chunks, vectors, SPLADE postings, symbols, versions) as one file.

The file is gzip-compressed JSON lines: a header naming the embedding model and dimension the vectors belong to,
then one line per page with its chunks. Import writes each page through the store's own write path (both vector
stores, BM25 postings recomputed, the change log kept), so an imported index searches exactly as the exported one.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mcp_web_ingest.errors import InvalidInputError
from mcp_web_ingest.models import Chunk, Section, SparseVec, Symbol
from mcp_web_ingest.storage.db import Database
from mcp_web_ingest.storage.interfaces import Store
from mcp_web_ingest.storage.records import PageRecord, validate_collection

__all__ = ["FORMAT", "PackSummary", "export_pack", "import_pack"]

FORMAT = "mcp-web-ingest-pack"
VERSION = 1
_SPARSE_DIM = 2**31  # term ids of the SPLADE vocabulary; the store needs no tighter bound
_PAGE_COLUMNS = (
    "url, title, content_hash, pipeline, final_url, canonical_url, description, language, etag, last_modified, "
    "http_status, content_format, content_url, version, version_source, crawled_at, indexed_at, links"
)
_ROLES = {0: "defines", 1: "uses"}


@dataclass(frozen=True)
class PackSummary:
    """What an export wrote or an import read."""

    collection: str
    pages: int
    chunks: int
    model: str
    dimension: int


def _vector(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=np.float32).copy()


def _sparse(pair: list[list[Any]] | None) -> SparseVec:
    return SparseVec(tuple(pair[0]), tuple(pair[1]), _SPARSE_DIM) if pair else SparseVec((), (), _SPARSE_DIM)


_NAMES = tuple(c.strip() for c in _PAGE_COLUMNS.split(","))
_CHUNKS = (
    "SELECT c.ordinal, c.text, c.section_path, c.anchor, c.token_count, c.content_hash, c.embedding::real[], "
    "(SELECT array_agg(s.term ORDER BY s.term) FROM chunk_sparse_postings s WHERE s.chunk_id = c.id), "
    "(SELECT array_agg(s.weight ORDER BY s.term) FROM chunk_sparse_postings s WHERE s.chunk_id = c.id), "
    "(SELECT array_agg(json_build_array(y.name, y.kind, y.language, y.role)) FROM chunk_symbols y "
    "WHERE y.chunk_id = c.id AND y.exact) FROM chunks c WHERE c.page_id = %s ORDER BY c.ordinal"
)


def _chunk(row: tuple[Any, ...]) -> dict[str, Any]:
    ordinal, text, path, anchor, tokens, content_hash, emb, terms, weights, symbols = row
    if emb is None:  # stored while the embedder was being replaced
        raise InvalidInputError("Some chunks have no vector yet (a re-embed is running); export again after it ends")
    return {
        "ordinal": ordinal,
        "text": text,
        "section_path": list(path or []),
        "anchor": anchor,
        "token_count": tokens,
        "content_hash": content_hash,
        "embedding": base64.b64encode(np.asarray(emb, dtype=np.float32).tobytes()).decode("ascii"),
        "splade": [list(terms), [float(w) for w in weights]] if terms else None,
        "symbols": sorted({tuple(s) for s in symbols or []}),
    }


async def _write_pages(db: Database, collection: str, out: Any) -> tuple[int, int]:
    """Write every page of a collection as one JSON line each; returns (pages, chunks)."""
    pages = chunks = 0
    columns = ", ".join("p." + c for c in _NAMES)
    async with db.pool.connection() as conn:
        rows = await (
            await conn.execute(
                f"SELECT p.id, {columns} FROM pages p JOIN collections co ON co.id = p.collection_id "
                "WHERE co.name = %s ORDER BY p.id",
                (collection,),
            )
        ).fetchall()
        for row in rows:
            page = dict(zip(_NAMES, row[1:], strict=True))
            page["links"] = list(page["links"] or [])
            page["crawled_at"], page["indexed_at"] = page["crawled_at"].isoformat(), page["indexed_at"].isoformat()
            sections = await (
                await conn.execute(
                    "SELECT level, heading, anchor, path, markdown FROM page_sections WHERE page_id = %s "
                    "ORDER BY ordinal",
                    (row[0],),
                )
            ).fetchall()
            page["sections"] = [[lv, h, a, list(path or []), md] for lv, h, a, path, md in sections]
            found = [_chunk(c) for c in await (await conn.execute(_CHUNKS, (row[0],))).fetchall()]
            out.write(json.dumps({"page": page, "chunks": found}, ensure_ascii=False) + "\n")
            pages, chunks = pages + 1, chunks + len(found)
    return pages, chunks


async def export_pack(db: Database, collection: str, path: Path, model: str, dimension: int) -> PackSummary:
    """Write a collection to ``path`` (gzip JSON lines), with the embedding model's fingerprint."""
    collection = validate_collection(collection)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "collection": collection,
        "embedding": {"model": model, "dimension": dimension},
        "exported_at": datetime.now().astimezone().isoformat(),
    }
    tmp = path.with_name(path.name + ".part")
    try:
        with gzip.open(tmp, "wt", encoding="utf-8") as out:
            out.write(json.dumps(header) + "\n")
            pages, chunks = await _write_pages(db, collection, out)
        if not pages:
            raise InvalidInputError(f"Collection {collection!r} has no pages to export; list_sources shows them")
        tmp.replace(path)  # a crash leaves no half-written pack under the real name
    finally:
        tmp.unlink(missing_ok=True)
    return PackSummary(collection, pages, chunks, model, dimension)


def _header(stream: Any, path: Path) -> dict[str, Any]:
    """The pack's first line, checked."""
    try:
        header = json.loads(stream.readline())
    except (OSError, EOFError, ValueError) as exc:  # gzip reports a file that is not gzip as OSError
        raise InvalidInputError(f"{path} is not a pack written by `mcp-web-ingest export` ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidInputError(f"{path} is not a pack written by `mcp-web-ingest export`")
    if header.get("version") != VERSION:
        raise InvalidInputError(f"{path} is pack version {header.get('version')}; this server reads version {VERSION}")
    return header


async def import_pack(
    store: Store, db: Database, path: Path, model: str, dimension: int, collection: str | None = None
) -> PackSummary:
    """Write a pack's pages into ``collection`` (default: the one it was exported from); refuses another model."""
    try:
        stream = gzip.open(path, "rt", encoding="utf-8")  # noqa: SIM115 - closed below, after every page
    except OSError as exc:
        raise InvalidInputError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    with stream:
        return await _import(stream, store, db, path, model, dimension, collection)


async def _import(
    stream: Any, store: Store, db: Database, path: Path, model: str, dimension: int, collection: str | None
) -> PackSummary:
    header = _header(stream, path)
    embedding = header.get("embedding") or {}
    if (embedding.get("model"), embedding.get("dimension")) != (model, dimension):
        raise InvalidInputError(
            f"{path} was embedded with {embedding.get('model')} ({embedding.get('dimension')} dimensions) but this "
            f"index uses {model} ({dimension}). Import it into an index with EMBEDDING_MODEL="
            f"{embedding.get('model')}, then switch the model and run `mcp-web-ingest reembed`."
        )
    target = validate_collection(collection or header.get("collection"))
    count = chunk_count = 0
    for number, raw in enumerate(stream, start=2):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            page, chunks = line["page"], line["chunks"]
            record = PageRecord(
                **{k: page[k] for k in _NAMES if k not in ("crawled_at", "indexed_at", "links")},
                sections=tuple(Section(lv, h, a, md, tuple(p)) for lv, h, a, p, md in page["sections"]),
            )
            parsed = [
                Chunk(
                    c["ordinal"], c["text"], tuple(c["section_path"]), c["anchor"], c["token_count"], c["content_hash"]
                )
                for c in chunks
            ]
            vectors = [_vector(c["embedding"]) for c in chunks]
            sparse = [_sparse(c["splade"]) for c in chunks] if any(c["splade"] for c in chunks) else None
            symbols = [[Symbol(n, k, lang, _ROLES.get(r, r)) for n, k, lang, r in c["symbols"]] for c in chunks]
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise InvalidInputError(
                f"{path} is damaged at line {number} ({type(exc).__name__}: {exc}); {count} pages before it were "
                "imported, each whole"
            ) from exc
        if any(v.shape != (dimension,) for v in vectors):
            raise InvalidInputError(f"{path} line {number} holds vectors of another dimension than {dimension}")
        page_id = await store.replace_page(target, record, parsed, vectors, sparse, symbols)
        await store.catalog.set_links(page_id, page["links"])
        async with db.pool.connection() as conn:  # provenance: when the text was fetched, not when it was imported
            await conn.execute(
                "UPDATE pages SET crawled_at = %s, indexed_at = %s WHERE id = %s",
                (page["crawled_at"], page["indexed_at"], page_id),
            )
        count += 1
        chunk_count += len(chunks)
    return PackSummary(target, count, chunk_count, model, dimension)
