-- Readiness follow-up: review schedules per workload, post-incident reviews, action items
-- (findings and lessons that became task tickets), and the readiness events announced once.
CREATE TABLE review_schedules (
    id          INTEGER PRIMARY KEY,
    workload    TEXT NOT NULL,
    lens_id     TEXT NOT NULL REFERENCES lenses (id),
    -- Periodic: review again this many days after the last review.
    every_days  INTEGER,
    -- Dated: the date (YYYY-MM-DD) the workload must be ready by, and the lead before it.
    review_by   TEXT,
    days_before INTEGER,
    -- review_due is announced this many days before the due date.
    notice_days INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX review_schedules_workload ON review_schedules (workload);

-- The COE document of a post-incident review; one per incident.
CREATE TABLE incident_reviews (
    review_id      INTEGER PRIMARY KEY REFERENCES reviews (id),
    ticket_id      INTEGER NOT NULL UNIQUE REFERENCES tickets (id),
    -- JSON: what happened, impact, timeline (when edited), metrics, whys, factors, went well,
    -- lessons, caught_by, proposal.
    report         TEXT NOT NULL,
    -- When the proposed question was decided: approved (with the lens version it made) or
    -- rejected.
    proposal_state TEXT,
    proposal_lens  TEXT,
    proposal_version INTEGER,
    completed_at   TEXT,
    completed_by   TEXT,
    updated_by     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- A finding or a post-incident lesson that became a task ticket.
CREATE TABLE action_items (
    id            INTEGER PRIMARY KEY,
    review_id     INTEGER NOT NULL REFERENCES reviews (id),
    -- The question of a finding; NULL for a post-incident lesson.
    question_id   TEXT,
    ticket_id     INTEGER NOT NULL UNIQUE REFERENCES tickets (id),
    -- The incident a post-incident item follows.
    incident_id   INTEGER REFERENCES tickets (id),
    due_at        TEXT,
    verified_at   TEXT,
    verified_by   TEXT,
    verification  TEXT,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX action_items_finding ON action_items (review_id, question_id)
    WHERE question_id IS NOT NULL;
CREATE INDEX action_items_open ON action_items (verified_at, due_at);

-- Readiness events already announced (review_due, review_overdue, action_item_overdue), so
-- each is announced once whichever node sees it first.
CREATE TABLE readiness_events (
    key TEXT PRIMARY KEY,
    at  TEXT NOT NULL
);
