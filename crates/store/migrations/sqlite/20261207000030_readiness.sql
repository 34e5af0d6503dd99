-- Readiness: lenses (Well-Architected custom lens documents) and their versions, reviews of a
-- workload against one version of a lens, their answers, and milestones that freeze a review.
CREATE TABLE lenses (
    id         TEXT PRIMARY KEY,
    -- The lens document's `name`: importing a lens of the same name adds a version.
    name       TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE lens_versions (
    lens_id     TEXT NOT NULL REFERENCES lenses (id),
    -- 1, 2, ... in the order imported.
    version     INTEGER NOT NULL,
    -- SHA-256 of the exported document: tells versions apart.
    digest      TEXT NOT NULL,
    -- The document as it was imported.
    document    TEXT NOT NULL,
    imported_by TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (lens_id, digest),
    UNIQUE (lens_id, version)
);

CREATE TABLE reviews (
    id          INTEGER PRIMARY KEY,
    -- A workload's name; the review keeps it if the workload is deleted.
    workload    TEXT NOT NULL,
    lens_id     TEXT NOT NULL,
    -- The lens version the review is on (the one it started on, until upgraded).
    lens_digest TEXT NOT NULL,
    -- periodic | manual | post_incident
    kind        TEXT NOT NULL,
    -- The incident a post-incident review follows.
    ticket_id   INTEGER REFERENCES tickets (id),
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    FOREIGN KEY (lens_id, lens_digest) REFERENCES lens_versions (lens_id, digest)
);
CREATE INDEX reviews_workload ON reviews (workload, id);
CREATE INDEX reviews_ticket ON reviews (ticket_id);

CREATE TABLE review_answers (
    review_id      INTEGER NOT NULL REFERENCES reviews (id),
    question_id    TEXT NOT NULL,
    -- JSON array of the selected choice ids.
    choices        TEXT NOT NULL,
    notes          TEXT,
    -- Why the question does not apply; NULL when it does.
    not_applicable TEXT,
    updated_by     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (review_id, question_id)
);

CREATE TABLE review_milestones (
    review_id   INTEGER NOT NULL REFERENCES reviews (id),
    number      INTEGER NOT NULL,
    name        TEXT NOT NULL,
    lens_digest TEXT NOT NULL,
    -- JSON: every question's answer and risk, and the risk counts, as they were.
    frozen      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (review_id, number),
    UNIQUE (review_id, name)
);
