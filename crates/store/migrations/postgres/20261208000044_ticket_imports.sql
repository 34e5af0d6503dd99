-- Tickets brought in by `opsdesk import` (from a connector's system or a CSV file), by where
-- they came from, so that running an import again changes nothing.
CREATE TABLE ticket_imports (
    -- `request_tracker:<connector>`, `csv:<file name>`.
    source       TEXT    NOT NULL,
    -- The ticket's id in its source (a CSV file's id column, or its row's digest).
    remote_id    TEXT    NOT NULL,
    ticket_id    BIGINT  NOT NULL REFERENCES tickets (id),
    imported_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, remote_id)
);
