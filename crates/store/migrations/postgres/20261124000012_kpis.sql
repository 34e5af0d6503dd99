-- KPIs: what the watcher measures on each ticket's clocks, the KPIs teams define, and the
-- series of evaluated values.

-- The measured clocks: business seconds to the first response and to the resolution (pending
-- left out, on the calendar of the ticket's SLA policy) and whether each met its target.
ALTER TABLE ticket_clocks ADD COLUMN response_at TIMESTAMPTZ;
ALTER TABLE ticket_clocks ADD COLUMN response_seconds BIGINT;
ALTER TABLE ticket_clocks ADD COLUMN response_met BIGINT;
ALTER TABLE ticket_clocks ADD COLUMN resolution_seconds BIGINT;
ALTER TABLE ticket_clocks ADD COLUMN resolution_met BIGINT;
ALTER TABLE ticket_clocks ADD COLUMN reopens BIGINT NOT NULL DEFAULT 0;
-- Wall-clock seconds spent in each status so far (where work waits).
ALTER TABLE ticket_clocks ADD COLUMN new_seconds BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ticket_clocks ADD COLUMN acknowledged_seconds BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ticket_clocks ADD COLUMN in_progress_seconds BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ticket_clocks ADD COLUMN pending_seconds BIGINT NOT NULL DEFAULT 0;

-- When AWS first answered a case.
ALTER TABLE support_cases ADD COLUMN first_reply_at TIMESTAMPTZ;

-- Every ticket is looked at once more, resolved ones too, so its times are measured. Nothing
-- is announced for them: tickets without a clock get one marked as already announced.
INSERT INTO ticket_clocks (ticket_id, check_at, announced, escalation_policy)
SELECT id, updated_at,
       '["first_response.warning","first_response.breach","resolution.warning","resolution.breach","aws.auto"]',
       ''
FROM tickets WHERE id NOT IN (SELECT ticket_id FROM ticket_clocks);
UPDATE ticket_clocks
SET check_at = (SELECT updated_at FROM tickets WHERE tickets.id = ticket_clocks.ticket_id)
WHERE check_at IS NULL;

-- KPIs defined through the API; those of the configuration file live there.
CREATE TABLE kpi_definitions (
    name       TEXT        PRIMARY KEY,
    spec       TEXT        NOT NULL,
    created_by TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- When each KPI was last evaluated; the row is locked while a node stores an evaluation.
CREATE TABLE kpi_runs (
    name         TEXT        PRIMARY KEY,
    evaluated_at TIMESTAMPTZ NOT NULL
);

-- The latest value of each KPI per scope ('' overall, 'team=ops', ...).
CREATE TABLE kpi_states (
    name         TEXT             NOT NULL,
    scope        TEXT             NOT NULL,
    value        DOUBLE PRECISION,
    status       TEXT             NOT NULL,
    since        TIMESTAMPTZ      NOT NULL,
    evaluated_at TIMESTAMPTZ      NOT NULL,
    point_at     TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (name, scope)
);

-- The series: a point when the value or status changes, and at least hourly.
CREATE TABLE kpi_points (
    name   TEXT             NOT NULL,
    scope  TEXT             NOT NULL,
    at     TIMESTAMPTZ      NOT NULL,
    value  DOUBLE PRECISION,
    status TEXT             NOT NULL,
    PRIMARY KEY (name, scope, at)
);
CREATE INDEX kpi_points_at ON kpi_points (at);

-- Scheduled trend reports sent, one row per schedule and period, so each goes out once.
CREATE TABLE report_runs (
    name        TEXT NOT NULL,
    period_from TIMESTAMPTZ NOT NULL,
    sent_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, period_from)
);
