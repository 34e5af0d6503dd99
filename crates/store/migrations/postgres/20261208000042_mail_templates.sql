-- Letters to requesters as an admin rewrote them; a kind without a row uses the configured
-- template.
CREATE TABLE mail_templates (
    kind       TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
