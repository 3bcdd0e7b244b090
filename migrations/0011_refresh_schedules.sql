-- Scheduled refreshes: a source (a collection's pages under a URL prefix) refreshed every interval by the server,
-- as ordinary crawl jobs; the schedule lives here so it survives restarts.

-- migrate:up
CREATE TABLE refresh_schedules (
    id             bigserial        PRIMARY KEY,
    collection_id  bigint           NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    url_prefix     text             NOT NULL,
    interval_s     double precision NOT NULL CHECK (interval_s > 0),
    auth_profile   text,
    next_run_at    timestamptz      NOT NULL,
    last_run_at    timestamptz,
    last_job_id    uuid,
    UNIQUE (collection_id, url_prefix)
);
CREATE INDEX refresh_schedules_due_idx ON refresh_schedules (next_run_at);

-- migrate:down
DROP TABLE IF EXISTS refresh_schedules;
