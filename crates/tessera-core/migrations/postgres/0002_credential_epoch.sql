-- See the SQLite migration of the same name.
ALTER TABLE users ADD COLUMN credential_epoch BIGINT NOT NULL DEFAULT 0;

CREATE TABLE channel_keys (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    key BYTEA NOT NULL
);
