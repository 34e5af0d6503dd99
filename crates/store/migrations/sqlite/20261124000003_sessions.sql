-- Web sign-in: sessions and failed attempts (for rate limiting).

CREATE TABLE sessions (
    id_hash      TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    csrf_token   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    last_seen_at TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE login_failures (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    email  TEXT    NOT NULL,
    client TEXT    NOT NULL,
    at     TEXT    NOT NULL
);
CREATE INDEX login_failures_email ON login_failures (email, at);
CREATE INDEX login_failures_client ON login_failures (client, at);
