-- Refresh families: one login (one device) in JWT mode.
CREATE TABLE refresh_families (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    user_agent      TEXT,
    ip              TEXT
);
CREATE INDEX refresh_families_user ON refresh_families(user_id);

-- Refresh tokens, by hash. `sealed` holds the pair that replaced a spent token, encrypted
-- under a key derived from the spent token itself (only its holder can read it), for the
-- grace-window retry.
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    id         TEXT NOT NULL UNIQUE,
    family_id  TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    spent_at   INTEGER,
    sealed     BLOB
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);

-- Confidential OAuth clients (resource servers).
CREATE TABLE clients (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Revoked access tokens, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Tokens of a user issued before this instant are revoked.
ALTER TABLE users ADD COLUMN not_before INTEGER;

CREATE TABLE audit_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    user_id TEXT,
    detail  TEXT NOT NULL
);
CREATE INDEX audit_events_user ON audit_events(user_id, id);
CREATE INDEX audit_events_kind ON audit_events(kind, id);
