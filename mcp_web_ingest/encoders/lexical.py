"""BM25 term vectors shared by both vector stores: code-aware terms, a heading field, saturated length-normalised TF.

A document vector holds each term's BM25 term-frequency part; the store multiplies it by the term's IDF at query time
(PostgreSQL from its postings, Qdrant through the `lexical` vector's `modifier=idf`), so a query scores as BM25
without a vocabulary to maintain: the term id is a hash of the stemmed word.
"""

from __future__ import annotations

import math
import re
import threading
import zlib
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from mcp_web_ingest.models import SparseVec

# Words, numbers and identifiers; dotted and underscored names stay whole and are also split into their parts, so
# `asyncio.gather` matches a query for "asyncio gather" and one for "asyncio.gather".
TOKEN = re.compile(r"[^\W_]\w*(?:\.\w+)*", re.UNICODE)
_COMPOUND_SEPARATOR = re.compile(r"[._]+")
# Common English function words: their IDF is near zero anyway; dropping them keeps vectors and postings short.
_STOPWORDS = "a an and are as at be but by for from has have if in into is it its of on or such that the their then "
_STOPWORDS += "there these they this to was were will with which who what when where how do"
STOPWORDS = frozenset(_STOPWORDS.split())
HASH_SPACE = 2**31 - 1  # term ids fit a positive int32 (Qdrant takes uint32; PostgreSQL int4 too)
BM25_K1 = 1.2
BM25_B = 0.75
# Mean terms of a chunk on the Python and Django docs (body plus weighted headings); only shapes length normalisation.
AVERAGE_CHUNK_TERMS = 112.0
# A word in the headings above a chunk (page title, section path) counts this many times a word of its text:
# measured on both eval corpora, 2–3 helps page ranking over body-only (tools/eval.py, docs/benchmarks.md).
HEADING_WEIGHT = 2.0
MAX_TERM_CHARS = 64


_local = threading.local()


def _stemmer():  # type: ignore[no-untyped-def]
    """This thread's stemmer: a Snowball stemmer keeps its word in its own state, so two threads sharing one
    failed pages with IndexError (and could mix up stems) when BM25 vectors moved to worker threads."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import snowballstemmer  # the same Snowball English algorithm as PostgreSQL's 'english' configuration

        stemmer = _local.stemmer = snowballstemmer.stemmer("english")
    return stemmer


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


def humps(word: str) -> list[str]:
    """camelCase and PascalCase parts: `getElementById` → get, Element, By, Id; `HTTPServer` → HTTP, Server."""
    parts: list[str] = []
    start = 0
    for i in range(1, len(word)):
        prev, char, following = word[i - 1], word[i], word[i + 1 : i + 2]
        # A new part starts at an upper-case letter after a lower-case one, or at the last capital of an acronym
        # that a lower-case letter follows (HTTPServer: the S).
        if char.isupper() and (prev.islower() or (prev.isupper() and following.islower())):
            parts.append(word[start:i])
            start = i
    parts.append(word[start:])
    return parts


def _pieces(token: str) -> list[str]:
    """The lower-cased searchable pieces of one token: compound names whole and split at dots, underscores, humps."""
    pieces: list[str] = []
    parts = [p for p in _COMPOUND_SEPARATOR.split(token) if p]
    if len(parts) > 1:
        pieces.append(token.lower())
    for part in parts:
        split = humps(part)
        if len(split) > 1:
            pieces.append(part.lower())
            pieces.extend(h.lower() for h in split)
        else:
            pieces.append(part.lower())
    return pieces


def terms(text: str) -> list[str]:
    """The lexical terms of a text: stemmed words without stopwords; code names whole and in their parts."""
    out: list[str] = []
    for match in TOKEN.finditer(text):
        for piece in _pieces(match.group(0)):
            if piece in STOPWORDS or len(piece) >= MAX_TERM_CHARS:
                continue
            out.append(_stem(piece) if piece.isalpha() else piece)
    return out


def term_id(term: str) -> int:
    """A stable id for a term (CRC-32, folded into the positive int32 range)."""
    return zlib.crc32(term.encode("utf-8")) % HASH_SPACE


def _vector(weights: dict[int, float]) -> SparseVec:
    ordered = sorted(weights.items())
    return SparseVec(tuple(i for i, _ in ordered), tuple(w for _, w in ordered), HASH_SPACE)


def document_vector(text: str, headings: Sequence[str] = ()) -> SparseVec:
    """BM25 term-frequency part of each term of a chunk and the headings above it; the store supplies the IDF.

    The headings are a second field (BM25F): their words add HEADING_WEIGHT each to the term frequency and length.
    """
    counts: Counter[str] = Counter(terms(text))
    for term in terms(" ".join(headings)):
        counts[term] += HEADING_WEIGHT
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


def bm25_idf(document_frequency: int, documents: int) -> float:
    """BM25's IDF (the Lucene form, never negative) of a term found in document_frequency of documents."""
    df = min(max(document_frequency, 0), documents)
    return math.log(1.0 + (documents - df + 0.5) / (df + 0.5))
