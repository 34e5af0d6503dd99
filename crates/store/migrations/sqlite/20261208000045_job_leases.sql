-- Jobs that run on one node at a time (the clock watcher, the AWS pollers, ...): the node that
-- holds each, until when. A node renews its lease well before it ends; another node takes the
-- job once the lease has ended.
CREATE TABLE job_leases (
    job          TEXT    NOT NULL PRIMARY KEY,
    holder       TEXT    NOT NULL,
    acquired_at  TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL
);
