"""Rows written by COPY inside a caller's transaction: chunks, SPLADE and BM25 postings, code-symbol lookup keys."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg

from mcp_web_ingest.encoders.lexical import document_vector
from mcp_web_ingest.models import Chunk, SparseVec, Symbol, symbol_keys


async def copy_chunks(
    conn: psycopg.AsyncConnection,
    page_id: int,
    pipeline: str,
    chunks: Sequence[Chunk],
    vectors: Sequence[np.ndarray],
    chunk_ids: Sequence[int] | None,
) -> None:
    """COPY a page's chunks with their dense vectors; under chunk_ids when given, else the sequence assigns ids.

    The caller writes their BM25 postings in the same transaction (copy_lexical_postings): has_lexical is set here.
    """
    columns = "page_id, ordinal, section_path, context, anchor, text, token_count, content_hash, pipeline, embedding"
    columns += ", has_lexical"
    types = ["int8", "int4", "text[]", "text", "text", "text", "int4", "text", "text", "vector", "bool"]
    if chunk_ids is not None:
        columns, types = "id, " + columns, ["int8", *types]
    async with (
        conn.cursor() as cur,
        cur.copy(f"COPY chunks ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy,
    ):
        copy.set_types(types)
        for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
            values = (
                page_id,
                chunk.ordinal,
                list(chunk.section_path),
                " › ".join(chunk.section_path),
                chunk.anchor,
                chunk.text,
                chunk.token_count,
                chunk.content_hash,
                pipeline,
                np.asarray(vector, dtype=np.float32),
                True,
            )
            await copy.write_row(values if chunk_ids is None else (chunk_ids[i], *values))


async def copy_postings(conn: psycopg.AsyncConnection, rows: Sequence[tuple[int, SparseVec]]) -> None:
    """COPY SPLADE postings, one row per (term, chunk) with a positive weight."""
    async with (
        conn.cursor() as cur,
        cur.copy("COPY chunk_sparse_postings (term, chunk_id, weight) FROM STDIN WITH (FORMAT BINARY)") as copy,
    ):
        copy.set_types(["int4", "int8", "float4"])
        for chunk_id, vec in rows:
            for term, weight in zip(vec.indices, vec.values, strict=True):
                if weight > 0:
                    await copy.write_row((term, chunk_id, weight))


def lexical_vectors(chunks: Sequence[tuple[Sequence[str], str]]) -> list[SparseVec]:
    """The BM25 vectors of chunks given as (section path, text): CPU work, for a worker thread."""
    return [document_vector(text, path) for path, text in chunks]


async def copy_lexical_postings(conn: psycopg.AsyncConnection, rows: Sequence[tuple[int, int, SparseVec]]) -> None:
    """COPY BM25 postings of chunks given as (chunk id, collection id, vector from lexical_vectors)."""
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY chunk_lexical_postings (term, chunk_id, weight, collection_id) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["int4", "int8", "float4", "int8"])
        for chunk_id, collection, vec in rows:
            for term, weight in zip(vec.indices, vec.values, strict=True):
                await copy.write_row((term, chunk_id, weight, collection))


async def copy_symbols(conn: psycopg.AsyncConnection, ids: dict[int, int], symbols: Sequence[Sequence[Symbol]]) -> None:
    """COPY a page's chunk symbols, one row per lookup key (ids maps chunk ordinal to id)."""
    rows: set[tuple[int, str, int, bool, str, str, str]] = set()
    for ordinal, chunk_symbols in enumerate(symbols):
        for sym in chunk_symbols:
            full = sym.name.lower()
            role = 0 if sym.role == "defines" else 1
            for key in symbol_keys(sym.name):
                rows.add((ids[ordinal], key, role, key == full, sym.name, sym.kind, sym.language))
    async with (
        conn.cursor() as c,
        c.copy(
            "COPY chunk_symbols (chunk_id, key, role, exact, name, kind, language) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["int8", "text", "int2", "bool", "text", "text", "text"])
        for row in rows:
            await copy.write_row(row)
