-- A per-user counter that only moves forward: every user-wide revocation (disable, role or
-- password change, logout-all, admin revoke) bumps it before ending credentials, and a
-- login re-reads it after creating its session or family, so that no credential issued
-- concurrently with a revocation survives it.
ALTER TABLE users ADD COLUMN credential_epoch INTEGER NOT NULL DEFAULT 0;

-- A key shared by every instance through the database, authenticating the messages they
-- push to each other over Redis (whoever can publish to Redis cannot forge revocations).
CREATE TABLE channel_keys (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL
);
