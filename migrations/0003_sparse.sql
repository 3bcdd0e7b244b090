-- SPLADE postings: one row per (term, chunk) with the document weight; exact sparse dot-product search.
-- Chosen over pgvector sparsevec + HNSW by measurement at 50k chunks (tools/sparse_storage_bench.py): HNSW built in
-- 170 s and found only 76-85 % of the exact top 150; the covering btree builds in seconds, is exact, and answers in
-- ~51 ms p50, with collection/url filters as plain joins.

-- migrate:up
CREATE TABLE chunk_sparse_postings (
    term      integer NOT NULL,
    chunk_id  bigint  NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    weight    real    NOT NULL CHECK (weight > 0),
    -- Covering: queries read postings by index-only scans.
    PRIMARY KEY (term, chunk_id) INCLUDE (weight)
);
CREATE INDEX chunk_sparse_postings_chunk_idx ON chunk_sparse_postings (chunk_id);
-- Chunks stored while SPLADE was down are back-filled later.
ALTER TABLE chunks ADD COLUMN has_sparse boolean NOT NULL DEFAULT false;
CREATE INDEX chunks_missing_sparse_idx ON chunks (id) WHERE NOT has_sparse;

-- migrate:down
DROP INDEX IF EXISTS chunks_missing_sparse_idx;
ALTER TABLE chunks DROP COLUMN IF EXISTS has_sparse;
DROP TABLE IF EXISTS chunk_sparse_postings;
