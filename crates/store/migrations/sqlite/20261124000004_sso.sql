-- Single sign-on: sign-ins started at the identity provider and not yet finished.

CREATE TABLE sso_logins (
    state      TEXT PRIMARY KEY,
    nonce      TEXT NOT NULL,
    verifier   TEXT NOT NULL,
    created_at TEXT NOT NULL
);
