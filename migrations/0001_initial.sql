-- Initial schema: collections, pages with provenance, chunks with dense vectors and full text.
-- The dense vector column has no fixed dimension: the embedding space in use is recorded in index_meta
-- and the HNSW index is built on an expression cast to that dimension (see store.ensure_embedding_space).

-- migrate:up
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE collections (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pages (
    id             bigserial PRIMARY KEY,
    collection_id  bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    url            text NOT NULL,
    canonical_url  text,
    final_url      text,
    domain         text NOT NULL,
    title          text NOT NULL DEFAULT '',
    description    text,
    language       text,
    content_hash   text NOT NULL,
    etag           text,
    last_modified  text,
    http_status    integer,
    pipeline       text NOT NULL,
    chunk_count    integer NOT NULL DEFAULT 0,
    crawled_at     timestamptz NOT NULL DEFAULT now(),
    indexed_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection_id, url)
);
CREATE INDEX pages_url_prefix_idx ON pages (url text_pattern_ops);
CREATE INDEX pages_domain_idx ON pages (domain);

CREATE TABLE chunks (
    id            bigserial PRIMARY KEY,
    page_id       bigint NOT NULL REFERENCES pages (id) ON DELETE CASCADE,
    ordinal       integer NOT NULL,
    section_path  text[] NOT NULL DEFAULT '{}',
    context       text NOT NULL DEFAULT '',
    anchor        text,
    text          text NOT NULL,
    token_count   integer NOT NULL,
    content_hash  text NOT NULL,
    pipeline      text NOT NULL,
    embedding     vector,
    -- Chunk text weighs more than the headings above it; both are searchable.
    tsv           tsvector GENERATED ALWAYS AS (
                      setweight(to_tsvector('english'::regconfig, text), 'A')
                      || setweight(to_tsvector('english'::regconfig, context), 'B')
                  ) STORED,
    UNIQUE (page_id, ordinal)
);
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
CREATE INDEX chunks_content_hash_idx ON chunks (content_hash);

CREATE TABLE index_meta (
    key    text PRIMARY KEY,
    value  text NOT NULL
);

INSERT INTO collections (name) VALUES ('default');

-- migrate:down
DROP TABLE IF EXISTS index_meta;
DROP TABLE IF EXISTS chunks;
DROP TABLE IF EXISTS pages;
DROP TABLE IF EXISTS collections;
