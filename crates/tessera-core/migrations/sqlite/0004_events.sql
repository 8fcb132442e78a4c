-- The revocation feed: every revocation or invalidation, in order. Instances replay it
-- from their last seen id, so none misses an event while its push channel is down.
CREATE TABLE revocation_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    at         INTEGER NOT NULL
);
