-- AWS Support as it is from 2027: accounts in AWS GovCloud (US) keep the plans that end
-- elsewhere; each case keeps the plan it was decided on and what decided its severity; the
-- case severities AWS offers each account (DescribeSeverityLevels) are kept as last asked.
ALTER TABLE aws_accounts ADD COLUMN govcloud BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE support_cases ADD COLUMN support_plan TEXT;
ALTER TABLE support_cases ADD COLUMN severity_source TEXT;
-- Parts of the first reply not yet fully added to the case that AWS has taken already.
ALTER TABLE support_cases ADD COLUMN sent_parts BIGINT NOT NULL DEFAULT 0;

CREATE TABLE aws_severity_levels (
    account_id TEXT PRIMARY KEY,
    -- JSON array of severity codes; NULL until AWS has answered once.
    levels     TEXT,
    -- Why the last ask failed; NULL when it succeeded.
    error      TEXT,
    checked_at TIMESTAMPTZ NOT NULL
);
