-- Fixed-window counters for login throttling, by key ("acct:<name>", "ip:<addr>").
CREATE TABLE rate_limits (
    key          TEXT PRIMARY KEY NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL
);
