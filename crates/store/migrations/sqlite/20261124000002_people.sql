-- People and teams.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    active        INTEGER NOT NULL,
    password_hash TEXT,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);
-- Emails are stored in lower case; the index keeps them unique.
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE teams (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    lead_user_id INTEGER REFERENCES users (id),
    created_at   TEXT    NOT NULL
);

CREATE TABLE team_members (
    team_id INTEGER NOT NULL REFERENCES teams (id),
    user_id INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);
