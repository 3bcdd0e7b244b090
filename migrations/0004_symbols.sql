-- Code symbols per chunk (functions, classes, methods, types, constants...) from code blocks and API signatures.
-- One row per lookup key (the lower-cased full name and each dotted suffix), so both the `symbol=` filter and the
-- exact-name boost are one index range on the primary key.

-- migrate:up
CREATE TABLE chunk_symbols (
    chunk_id  bigint   NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    key       text     NOT NULL,
    role      smallint NOT NULL,  -- 0 defines, 1 uses
    exact     boolean  NOT NULL,  -- key is the full name, not a suffix of it
    name      text     NOT NULL,
    kind      text     NOT NULL,
    language  text     NOT NULL,
    PRIMARY KEY (key, role, chunk_id, name)
);
CREATE INDEX chunk_symbols_chunk_idx ON chunk_symbols (chunk_id);

-- migrate:down
DROP TABLE IF EXISTS chunk_symbols;
