-- The IAM role opsdesk assumes for an account's AWS Support cases.
ALTER TABLE aws_accounts ADD COLUMN support_role_arn TEXT;
