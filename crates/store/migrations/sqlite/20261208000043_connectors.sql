-- Links between opsdesk tickets and tickets in other ticketing systems (connectors), with
-- what was last synced each way, so that nothing is sent twice or lost while the other side
-- is down, and a change made on both sides is noticed instead of overwritten.
CREATE TABLE external_links (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    connector        TEXT    NOT NULL,
    ticket_id        INTEGER NOT NULL REFERENCES tickets (id),
    -- None while opsdesk is creating the remote ticket.
    remote_id        TEXT,
    remote_url       TEXT,
    -- creating | linked
    state            TEXT    NOT NULL,
    -- The values both sides held at the last sync.
    synced_title     TEXT    NOT NULL,
    synced_status    TEXT    NOT NULL,
    synced_severity  TEXT    NOT NULL,
    -- The newest opsdesk comment sent, and the newest remote change taken.
    sent_comment_id  INTEGER NOT NULL DEFAULT 0,
    remote_cursor    INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    detail           TEXT    NOT NULL DEFAULT '',
    next_sync_at     TEXT    NOT NULL,
    lease_until      TEXT,
    last_synced_at   TEXT,
    created_by       TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
);
CREATE UNIQUE INDEX external_links_ticket ON external_links (connector, ticket_id);
CREATE UNIQUE INDEX external_links_remote ON external_links (connector, remote_id);
CREATE INDEX external_links_due ON external_links (connector, next_sync_at);

-- Per connector: the newest opsdesk ticket looked at for pushing without asking, and the
-- newest change of the other side looked at (RT: transaction id; none before the first look).
CREATE TABLE connector_cursors (
    connector       TEXT    PRIMARY KEY,
    last_ticket_id  INTEGER NOT NULL,
    remote_cursor   INTEGER,
    -- The newest remote change at the first look: tickets made after it are imported.
    first_cursor    INTEGER,
    updated_at      TEXT    NOT NULL
);
