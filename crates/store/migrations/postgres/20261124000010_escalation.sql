-- The clocks of each open ticket (SLA due times, escalation tier) and its AWS Support case.

-- One row per ticket the watcher keeps an eye on. `check_at` is when it looks next: the
-- trigger below sets it to the change's time whenever a ticket is opened or a field the clocks
-- depend on changes, so no write path can forget it.
CREATE TABLE ticket_clocks (
    ticket_id              BIGINT      PRIMARY KEY REFERENCES tickets (id),
    check_at               TIMESTAMPTZ,
    sla_policy             TEXT,
    first_response_due_at  TIMESTAMPTZ,
    first_response_warn_at TIMESTAMPTZ,
    resolution_due_at      TIMESTAMPTZ,
    resolution_warn_at     TIMESTAMPTZ,
    -- SLA events already announced, e.g. ["first_response.warning"].
    announced              TEXT        NOT NULL DEFAULT '[]',
    escalation_policy      TEXT,
    tier                   BIGINT,
    tier_since             TIMESTAMPTZ,
    escalate_at            TIMESTAMPTZ
);
CREATE INDEX ticket_clocks_check ON ticket_clocks (check_at) WHERE check_at IS NOT NULL;

CREATE FUNCTION tickets_mark_clock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_clocks (ticket_id, check_at) VALUES (NEW.id, NEW.updated_at)
    ON CONFLICT (ticket_id) DO UPDATE SET check_at = excluded.check_at;
    RETURN NULL;
END $$;

CREATE TRIGGER tickets_clock_opened AFTER INSERT ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_mark_clock();
-- Only when a value really changes: a signal's occurrence rewrites status and severity as
-- they were.
CREATE TRIGGER tickets_clock_changed AFTER UPDATE OF status, severity, kind, workload, team ON tickets
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.severity IS DISTINCT FROM NEW.severity
          OR OLD.kind IS DISTINCT FROM NEW.kind OR OLD.workload IS DISTINCT FROM NEW.workload
          OR OLD.team IS DISTINCT FROM NEW.team)
    EXECUTE FUNCTION tickets_mark_clock();

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
    ticket_id          BIGINT      PRIMARY KEY REFERENCES tickets (id),
    account_id         TEXT        NOT NULL,
    -- requested | opened | resolved | unavailable | failed | cancelled
    state              TEXT        NOT NULL,
    case_id            TEXT,
    display_id         TEXT,
    requested_severity TEXT        NOT NULL,
    severity           TEXT,
    service_code       TEXT        NOT NULL,
    category_code      TEXT        NOT NULL,
    subject            TEXT        NOT NULL,
    body               TEXT        NOT NULL,
    cc                 TEXT        NOT NULL DEFAULT '[]',
    aws_status         TEXT,
    detail             TEXT        NOT NULL,
    attempts           BIGINT      NOT NULL DEFAULT 0,
    next_sync_at       TIMESTAMPTZ NOT NULL,
    lease_until        TIMESTAMPTZ,
    last_message_at    TIMESTAMPTZ,
    sent_comment_id    BIGINT      NOT NULL DEFAULT 0,
    created_by         TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX support_cases_due ON support_cases (state, next_sync_at);
