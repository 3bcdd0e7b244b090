-- The documentation version a page belongs to (given on index_web_page, or read from its URL), and how it was found.

-- migrate:up
ALTER TABLE pages ADD COLUMN version text;
ALTER TABLE pages ADD COLUMN version_source text CHECK (version_source IN ('given', 'url'));
CREATE INDEX pages_collection_version_idx ON pages (collection_id, version) WHERE version IS NOT NULL;

-- migrate:down
DROP INDEX IF EXISTS pages_collection_version_idx;
ALTER TABLE pages DROP COLUMN IF EXISTS version_source;
ALTER TABLE pages DROP COLUMN IF EXISTS version;
