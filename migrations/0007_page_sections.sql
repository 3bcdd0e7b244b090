-- A page's extracted markdown, section by section, so read_page can return it (chunks overlap and are trimmed).

-- migrate:up
CREATE TABLE page_sections (
    page_id   bigint   NOT NULL REFERENCES pages (id) ON DELETE CASCADE,
    ordinal   integer  NOT NULL,
    level     smallint NOT NULL,
    heading   text     NOT NULL,
    anchor    text,
    path      text[]   NOT NULL DEFAULT '{}',
    markdown  text     NOT NULL,
    PRIMARY KEY (page_id, ordinal)
);

-- migrate:down
DROP TABLE IF EXISTS page_sections;
