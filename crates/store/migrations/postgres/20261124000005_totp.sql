-- Two-factor sign-in with time-based one-time codes (RFC 6238).

ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_pending TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
ALTER TABLE users ADD COLUMN totp_required BOOLEAN NOT NULL DEFAULT false;
