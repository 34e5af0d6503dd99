-- AWS accounts added through the API, with their support plan. Accounts of the configuration
-- file ([[aws.accounts]]) are not stored: the file stays their only source.

CREATE TABLE aws_accounts (
    id                  TEXT        PRIMARY KEY,
    name                TEXT        NOT NULL,
    support_plan        TEXT        NOT NULL,
    account_team_emails TEXT        NOT NULL DEFAULT '[]',
    created_by          TEXT        NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
