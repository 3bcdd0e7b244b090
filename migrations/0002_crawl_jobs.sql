-- Crawl jobs and their frontier, persisted so a killed server resumes them; outgoing links per page so an
-- unchanged (304) page still leads a re-crawl to its neighbours; content hashes indexed for duplicate detection.

-- migrate:up
CREATE TABLE crawl_jobs (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    collection_id  bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    kind           text NOT NULL DEFAULT 'crawl' CHECK (kind IN ('crawl', 'refresh')),
    start_url      text NOT NULL,
    params         jsonb NOT NULL,
    state          text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'done', 'partial', 'failed', 'cancelled')),
    error          text,
    owner_pid      integer,
    heartbeat_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz
);
CREATE INDEX crawl_jobs_active_idx ON crawl_jobs (state) WHERE state IN ('queued', 'running');
CREATE INDEX crawl_jobs_start_url_idx ON crawl_jobs (collection_id, start_url);

CREATE TABLE crawl_urls (
    job_id      uuid NOT NULL REFERENCES crawl_jobs (id) ON DELETE CASCADE,
    url         text NOT NULL,
    seq         bigserial,
    depth       integer NOT NULL,
    source      text NOT NULL,
    state       text NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'fetching', 'indexed', 'unchanged', 'failed', 'skipped', 'removed')),
    change      text,
    reason      text,
    page_id     bigint,
    chunks      integer,
    lastmod     text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, url)
);
CREATE INDEX crawl_urls_queue_idx ON crawl_urls (job_id, depth, seq) WHERE state = 'queued';
CREATE INDEX crawl_urls_state_idx ON crawl_urls (job_id, state);

ALTER TABLE pages ADD COLUMN links text[];
CREATE INDEX pages_content_hash_idx ON pages (collection_id, content_hash);

-- migrate:down
DROP INDEX IF EXISTS pages_content_hash_idx;
ALTER TABLE pages DROP COLUMN IF EXISTS links;
DROP TABLE IF EXISTS crawl_urls;
DROP TABLE IF EXISTS crawl_jobs;
