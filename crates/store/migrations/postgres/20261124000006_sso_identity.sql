-- The identity-provider account (issuer and subject) a person signs on with, once bound.

ALTER TABLE users ADD COLUMN sso_identity TEXT;
CREATE UNIQUE INDEX users_sso_identity ON users (sso_identity) WHERE sso_identity IS NOT NULL;
