-- What each re-index changed: a row per page added, changed (with the sections whose text changed) or removed,
-- written in the same transaction as the change itself; what_changed reads it.

-- migrate:up
CREATE TABLE page_changes (
    id             bigserial   PRIMARY KEY,
    collection_id  bigint      NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    url            text        NOT NULL,
    title          text        NOT NULL DEFAULT '',
    change         text        NOT NULL CHECK (change IN ('added', 'changed', 'removed')),
    sections       jsonb       NOT NULL DEFAULT '[]',  -- [{"change", "path", "anchor"}] of a changed page
    changed_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX page_changes_collection_at_idx ON page_changes (collection_id, changed_at);

-- migrate:down
DROP TABLE IF EXISTS page_changes;
