-- Files on tickets. The bytes are kept by their SHA-256 outside the database (on disk or in
-- S3); a row says which ticket holds which file, under what name, and who may see it.
CREATE TABLE attachments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id       INTEGER  NOT NULL REFERENCES tickets (id),
    comment_id      INTEGER  REFERENCES comments (id),
    name            TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    size            INTEGER  NOT NULL,
    sha256          TEXT    NOT NULL,
    public          INTEGER NOT NULL,
    -- upload | email | aws_case
    source          TEXT    NOT NULL,
    added_by        TEXT    NOT NULL,
    -- Sent with the ticket's AWS Support case, and when it went.
    to_case         INTEGER NOT NULL,
    sent_to_case_at TEXT,
    -- The AWS Support attachment a file came from, so that a case's file comes back once.
    case_attachment TEXT,
    created_at      TEXT    NOT NULL
);
CREATE INDEX attachments_ticket ON attachments (ticket_id, id);
CREATE UNIQUE INDEX attachments_case ON attachments (ticket_id, case_attachment);
