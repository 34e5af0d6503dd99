-- Signals from AWS and monitors, the workloads they belong to, how they correlate to tickets,
-- maintenance windows and the pollers' positions.

CREATE TABLE workloads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    environment TEXT    NOT NULL,
    team        TEXT,
    accounts    TEXT    NOT NULL DEFAULT '[]',
    regions     TEXT    NOT NULL DEFAULT '[]',
    resources   TEXT    NOT NULL DEFAULT '[]',
    tags        TEXT    NOT NULL DEFAULT '{}',
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

CREATE TABLE signals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    dedup_key   TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    category    TEXT,
    severity    TEXT    NOT NULL,
    account     TEXT,
    region      TEXT,
    service     TEXT,
    resources   TEXT    NOT NULL DEFAULT '[]',
    title       TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    occurred_at TEXT    NOT NULL,
    workload    TEXT,
    classified  INTEGER NOT NULL,
    expected    INTEGER NOT NULL,
    savings     REAL,
    rule        TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    ticket_id   INTEGER REFERENCES tickets (id),
    raw         TEXT    NOT NULL
);
CREATE INDEX signals_ticket   ON signals (ticket_id, id);
CREATE INDEX signals_dedup    ON signals (source, dedup_key, id);
CREATE INDEX signals_received ON signals (received_at, id);

-- One row per delivery that had an effect: a second delivery of the same news finds it here.
CREATE TABLE signal_receipts (
    receipt_key TEXT    PRIMARY KEY,
    received_at TEXT    NOT NULL
) WITHOUT ROWID;

-- The ticket that tracks each problem, and how often and how lately it was seen.
CREATE TABLE correlations (
    source        TEXT    NOT NULL,
    dedup_key     TEXT    NOT NULL,
    ticket_id     INTEGER NOT NULL REFERENCES tickets (id),
    occurrences   INTEGER NOT NULL,
    first_seen_at TEXT    NOT NULL,
    last_seen_at  TEXT    NOT NULL,
    last_state    TEXT    NOT NULL,
    state_changes TEXT    NOT NULL DEFAULT '[]',
    flapping      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source, dedup_key)
) WITHOUT ROWID;
CREATE INDEX correlations_ticket ON correlations (ticket_id);

CREATE TABLE maintenance_windows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    origin     TEXT    NOT NULL,
    dedup_key  TEXT    UNIQUE,
    workload   TEXT,
    title      TEXT    NOT NULL,
    service    TEXT,
    start_at   TEXT    NOT NULL,
    end_at     TEXT,
    resources  TEXT    NOT NULL DEFAULT '[]',
    ticket_id  INTEGER REFERENCES tickets (id),
    created_by TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);
CREATE INDEX maintenance_windows_start ON maintenance_windows (start_at);

CREATE TABLE poller_cursors (
    name       TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
