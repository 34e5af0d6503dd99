-- Email with requesters.

-- Every message that came in and every letter that went out, once per Message-ID: a message
-- seen again (a second poll, another node, SNS redelivering) is taken once, and a reply finds
-- its ticket through the ids it answers.
CREATE TABLE mail_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT    NOT NULL,
    -- in | out
    direction  TEXT    NOT NULL,
    -- The inbox a message came through, or the kind of letter.
    source     TEXT    NOT NULL,
    sender     TEXT    NOT NULL,
    recipient  TEXT,
    subject    TEXT    NOT NULL,
    ticket_id  INTEGER REFERENCES tickets (id),
    comment_id INTEGER,
    -- in: ticket | comment | held | ignored | refused; out: queued
    outcome    TEXT    NOT NULL,
    reason     TEXT,
    -- The whole text of a message that came in (a comment shows only what is new).
    body       TEXT,
    at         TEXT    NOT NULL
);
-- Unique per direction: a message that came in claiming the id of a letter cannot stop it.
CREATE UNIQUE INDEX mail_messages_id ON mail_messages (direction, message_id);
CREATE INDEX mail_messages_ticket ON mail_messages (ticket_id, id);
CREATE INDEX mail_messages_sender ON mail_messages (sender, at);
CREATE INDEX mail_messages_outcome ON mail_messages (outcome, id);

-- People who asked not to get receipts for the requests they raise.
CREATE TABLE mail_opt_outs (
    email TEXT PRIMARY KEY,
    at    TEXT NOT NULL
);
