-- BM25 postings: one row per (term, chunk) with the term's BM25 term-frequency part over the chunk's text and
-- headings (encoders/lexical.py); the IDF is computed at query time from each term's posting count.
-- Replaces ts_rank over the tsvector as the lexical leg (no IDF, dotted names as one token); the tsvector stays for
-- queries with operators (quotes, -exclusion). Chunks stored before this migration are back-filled when the
-- pgvector index opens.

-- migrate:up
CREATE TABLE chunk_lexical_postings (
    term           integer NOT NULL,
    chunk_id       bigint  NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    weight         real    NOT NULL CHECK (weight > 0),
    -- The chunk's page's collection (pages never change collection): a collection filter reads the index alone.
    collection_id  bigint  NOT NULL
);
-- Impact order: a term's postings best first, read by index-only scans (posting counts too).
CREATE INDEX chunk_lexical_postings_impact_idx ON chunk_lexical_postings (term, weight DESC)
    INCLUDE (chunk_id, collection_id);
CREATE INDEX chunk_lexical_postings_chunk_idx ON chunk_lexical_postings (chunk_id);
ALTER TABLE chunks ADD COLUMN has_lexical boolean NOT NULL DEFAULT false;
CREATE INDEX chunks_missing_lexical_idx ON chunks (id) WHERE NOT has_lexical;
-- Share of a page's text in fenced code blocks (models.code_share): a page that is nearly all code is a source
-- listing, rarely the answer to a question in words (search ranks it a little lower).
ALTER TABLE pages ADD COLUMN code_share real NOT NULL DEFAULT 0;
UPDATE pages SET code_share = s.share
FROM (
    SELECT c.page_id,
           coalesce(sum((SELECT sum(length(m[1])) FROM regexp_matches(c.text, '(```.*?(```|$))', 'g') AS m)), 0)::real
           / greatest(sum(length(c.text)), 1) AS share
    FROM chunks c GROUP BY c.page_id
) s
WHERE s.page_id = pages.id;

-- migrate:down
ALTER TABLE pages DROP COLUMN IF EXISTS code_share;
DROP INDEX IF EXISTS chunks_missing_lexical_idx;
ALTER TABLE chunks DROP COLUMN IF EXISTS has_lexical;
DROP TABLE IF EXISTS chunk_lexical_postings;
