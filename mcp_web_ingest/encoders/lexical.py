"""Lexical sparse vectors for Qdrant: stemmed terms hashed to ids, BM25 term-frequency weights.

Qdrant multiplies these by its own IDF (the collection's `lexical` vector has `modifier=idf`), so a query scores as
BM25 without a vocabulary to maintain: the term id is a hash of the stemmed word.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from functools import lru_cache

from mcp_web_ingest.models import SparseVec

# Words, numbers and identifiers; dotted and underscored names stay whole and are also split into their parts, so
# `asyncio.gather` matches a query for "asyncio gather" and one for "asyncio.gather".
TOKEN = re.compile(r"[^\W_]\w*(?:\.\w+)*", re.UNICODE)
# Common English function words: their IDF is near zero anyway; dropping them keeps vectors short.
_STOPWORDS = "a an and are as at be but by for from has have if in into is it its of on or such that the their then "
_STOPWORDS += "there these they this to was were will with which who what when where how do"
STOPWORDS = frozenset(_STOPWORDS.split())
HASH_SPACE = 2**31 - 1  # term ids fit a positive int32 (Qdrant takes uint32; PostgreSQL int4 too)
BM25_K1 = 1.2
BM25_B = 0.75
AVERAGE_CHUNK_TERMS = 120.0  # measured order of magnitude for our ~220-token chunks; only shapes length normalisation


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import snowballstemmer  # the same Snowball English algorithm as PostgreSQL's 'english' configuration

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


def terms(text: str) -> list[str]:
    """The lexical terms of a text: lower-cased, stemmed, stopwords dropped, compound names whole and in parts."""
    out: list[str] = []
    for match in TOKEN.finditer(text.lower()):
        token = match.group(0)
        parts = [p for p in re.split(r"[._]+", token) if p]
        if len(parts) > 1:
            out.append(token)
        for part in parts:
            if part not in STOPWORDS and len(part) < 64:
                out.append(_stem(part) if part.isalpha() else part)
    return out


def term_id(term: str) -> int:
    """A stable id for a term (CRC-32, folded into the positive int32 range)."""
    return zlib.crc32(term.encode("utf-8")) % HASH_SPACE


def _vector(weights: dict[int, float]) -> SparseVec:
    ordered = sorted(weights.items())
    return SparseVec(tuple(i for i, _ in ordered), tuple(w for _, w in ordered), HASH_SPACE)


def document_vector(text: str) -> SparseVec:
    """BM25 term-frequency part of each term (saturated, length-normalised); Qdrant supplies the IDF."""
    counts = Counter(terms(text))
    length = sum(counts.values())
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / AVERAGE_CHUNK_TERMS)
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        tid = term_id(term)
        # Hash collisions are rare; when they happen the weights add up, which is what the merged term would get.
        weights[tid] = weights.get(tid, 0.0) + tf * (BM25_K1 + 1) / (tf + norm)
    return _vector(weights)


def query_vector(text: str) -> SparseVec:
    """Each distinct query term with weight 1: the score is then the sum of IDF x saturated TF over matches."""
    return _vector(dict.fromkeys((term_id(t) for t in terms(text)), 1.0))
