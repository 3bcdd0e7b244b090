-- The dashboard lists the newest crawl jobs; scheduled refreshes make many, so the list reads an index.

-- migrate:up
CREATE INDEX IF NOT EXISTS crawl_jobs_created_idx ON crawl_jobs (created_at DESC);

-- migrate:down
DROP INDEX IF EXISTS crawl_jobs_created_idx;
