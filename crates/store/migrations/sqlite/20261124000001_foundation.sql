-- Tickets, comments, links, API tokens and the hash-chained audit trail.
-- Timestamps are RFC 3339 UTC text with microseconds, so they sort as text.

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    title           TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    requester       TEXT,
    assignee        TEXT,
    team            TEXT,
    workload        TEXT,
    tags            TEXT    NOT NULL DEFAULT '[]',
    source          TEXT    NOT NULL,
    dedup_key       TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    acknowledged_at TEXT,
    resolved_at     TEXT,
    closed_at       TEXT,
    version         INTEGER NOT NULL
);
CREATE INDEX tickets_status    ON tickets (status, id);
CREATE INDEX tickets_severity  ON tickets (severity, id);
CREATE INDEX tickets_kind      ON tickets (kind, id);
CREATE INDEX tickets_source    ON tickets (source, id);
CREATE INDEX tickets_team      ON tickets (team, id);
CREATE INDEX tickets_assignee  ON tickets (assignee, id);
CREATE INDEX tickets_workload  ON tickets (workload, id);
CREATE INDEX tickets_updated   ON tickets (updated_at, id);
CREATE INDEX tickets_dedup_key ON tickets (dedup_key) WHERE dedup_key IS NOT NULL;

CREATE TABLE ticket_tags (
    tag       TEXT    NOT NULL,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    PRIMARY KEY (tag, ticket_id)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE ticket_search USING fts5 (
    title, description, comments,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TABLE comments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    body       TEXT    NOT NULL,
    author     TEXT    NOT NULL,
    public     INTEGER NOT NULL,
    created_at TEXT    NOT NULL
);
CREATE INDEX comments_ticket ON comments (ticket_id, id);

CREATE TABLE ticket_links (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id  INTEGER NOT NULL REFERENCES tickets (id),
    target_id  INTEGER NOT NULL REFERENCES tickets (id),
    kind       TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    UNIQUE (source_id, target_id, kind)
);
CREATE INDEX ticket_links_target ON ticket_links (target_id);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_by TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    revoked_at TEXT
);

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    ticket_id INTEGER,
    changes   TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE INDEX audit_log_ticket ON audit_log (ticket_id, seq);

CREATE TRIGGER audit_log_refuse_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_refuse_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

-- The last entry of the chain: finds entries removed from its end.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
