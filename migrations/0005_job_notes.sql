-- Caveats a crawl job reports beside its counts (robots.txt treated as absent, sitemaps skipped...): not errors.

-- migrate:up
ALTER TABLE crawl_jobs ADD COLUMN notes text[] NOT NULL DEFAULT '{}';

-- migrate:down
ALTER TABLE crawl_jobs DROP COLUMN IF EXISTS notes;
