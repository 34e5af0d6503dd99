-- Notifications: channels and routing rules kept through the API, the outbox written in the
-- same transaction as the ticket change it announces, and every delivery attempt.

CREATE TABLE channels (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE routing_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    position   INTEGER NOT NULL,
    name       TEXT    NOT NULL UNIQUE,
    rule       TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);

-- One row per (ticket event, channel); the key is sent as Idempotency-Key.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    ticket_id       INTEGER REFERENCES tickets (id),
    event           TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    notification    TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    lease_until     TEXT,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    delivered_at    TEXT
);
CREATE INDEX outbox_due    ON outbox (state, next_attempt_at, id);
CREATE INDEX outbox_ticket ON outbox (ticket_id, id);

CREATE TABLE delivery_attempts (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id INTEGER NOT NULL REFERENCES outbox (id),
    attempt   INTEGER NOT NULL,
    at        TEXT    NOT NULL,
    ok        INTEGER NOT NULL,
    retryable INTEGER NOT NULL,
    detail    TEXT    NOT NULL
);
CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id, id);
