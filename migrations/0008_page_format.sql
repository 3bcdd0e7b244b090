-- Which format a page's text was read from (html, markdown, text, rst, pdf, notebook, llms-full) and, when that
-- was not the page's own URL, the document it came from (a Markdown twin, an llms-full.txt).

-- migrate:up
ALTER TABLE pages ADD COLUMN content_format text NOT NULL DEFAULT 'html';
ALTER TABLE pages ADD COLUMN content_url text;

-- migrate:down
ALTER TABLE pages DROP COLUMN IF EXISTS content_url;
ALTER TABLE pages DROP COLUMN IF EXISTS content_format;
