-- Saved views of the ticket queue: a person's named filter and sort, kept per person.
CREATE TABLE saved_views (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (owner, name)
);
