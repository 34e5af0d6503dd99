-- The clocks of each open ticket (SLA due times, escalation tier) and its AWS Support case.

-- One row per ticket the watcher keeps an eye on. `check_at` is when it looks next: the
-- triggers below set it to the change's time whenever a ticket is opened or a field the clocks
-- depend on changes, so no write path can forget it.
CREATE TABLE ticket_clocks (
    ticket_id              INTEGER PRIMARY KEY REFERENCES tickets (id),
    check_at               TEXT,
    sla_policy             TEXT,
    first_response_due_at  TEXT,
    first_response_warn_at TEXT,
    resolution_due_at      TEXT,
    resolution_warn_at     TEXT,
    -- SLA events already announced, e.g. ["first_response.warning"].
    announced              TEXT    NOT NULL DEFAULT '[]',
    escalation_policy      TEXT,
    tier                   INTEGER,
    tier_since             TEXT,
    escalate_at            TEXT
);
CREATE INDEX ticket_clocks_check ON ticket_clocks (check_at) WHERE check_at IS NOT NULL;

CREATE TRIGGER tickets_clock_opened AFTER INSERT ON tickets
BEGIN
    INSERT INTO ticket_clocks (ticket_id, check_at) VALUES (NEW.id, NEW.updated_at)
    ON CONFLICT (ticket_id) DO UPDATE SET check_at = excluded.check_at;
END;

-- Only when a value really changes: a signal's occurrence rewrites status and severity as
-- they were.
CREATE TRIGGER tickets_clock_changed AFTER UPDATE OF status, severity, kind, workload, team ON tickets
WHEN OLD.status IS NOT NEW.status OR OLD.severity IS NOT NEW.severity OR OLD.kind IS NOT NEW.kind
    OR OLD.workload IS NOT NEW.workload OR OLD.team IS NOT NEW.team
BEGIN
    INSERT INTO ticket_clocks (ticket_id, check_at) VALUES (NEW.id, NEW.updated_at)
    ON CONFLICT (ticket_id) DO UPDATE SET check_at = excluded.check_at;
END;

-- Tickets open before this version get their due times stored, but no SLA events, tiers or
-- automatic AWS cases for what happened before it: the events count as announced and the
-- escalation policy as none ('').
INSERT INTO ticket_clocks (ticket_id, check_at, announced, escalation_policy)
SELECT id, updated_at,
       '["first_response.warning","first_response.breach","resolution.warning","resolution.breach","aws.auto"]',
       ''
FROM tickets WHERE status NOT IN ('resolved', 'closed');

-- At most one AWS Support case per ticket, from the request to its resolution.
CREATE TABLE support_cases (
    ticket_id          INTEGER PRIMARY KEY REFERENCES tickets (id),
    account_id         TEXT    NOT NULL,
    -- requested | opened | resolved | unavailable | failed | cancelled
    state              TEXT    NOT NULL,
    case_id            TEXT,
    display_id         TEXT,
    requested_severity TEXT    NOT NULL,
    severity           TEXT,
    service_code       TEXT    NOT NULL,
    category_code      TEXT    NOT NULL,
    subject            TEXT    NOT NULL,
    body               TEXT    NOT NULL,
    cc                 TEXT    NOT NULL DEFAULT '[]',
    aws_status         TEXT,
    detail             TEXT    NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_sync_at       TEXT    NOT NULL,
    lease_until        TEXT,
    last_message_at    TEXT,
    sent_comment_id    INTEGER NOT NULL DEFAULT 0,
    created_by         TEXT    NOT NULL,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL
);
CREATE INDEX support_cases_due ON support_cases (state, next_sync_at);
