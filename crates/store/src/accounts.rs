//! AWS accounts added through the API, with their support plan.

use chrono::{DateTime, Utc};
use opsdesk_domain::{AwsAccount, CaseSeverity, SupportPlan};
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use crate::{on_read, on_tx, Db, Result, StoreError, Ts, Tx};

/// An AWS account as opsdesk lists it: from the configuration file or added through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AwsAccountRecord {
    /// The 12-digit account id.
    pub id: String,
    pub name: String,
    pub support_plan: SupportPlan,
    pub account_team_emails: Vec<String>,
    /// The IAM role opsdesk assumes for this account's AWS Support cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support_role_arn: Option<String>,
    /// The account is in AWS GovCloud (US).
    pub govcloud: bool,
    /// `config` (`[[aws.accounts]]`, read-only through the API) or `api`.
    pub origin: String,
    /// Who added it through the API; none for configured accounts.
    pub created_by: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl AwsAccountRecord {
    /// An account of the configuration file.
    pub fn configured(a: &AwsAccount) -> AwsAccountRecord {
        AwsAccountRecord {
            id: a.id.clone(),
            name: a.name.clone(),
            support_plan: a.support_plan,
            account_team_emails: a.account_team_emails.clone(),
            support_role_arn: a.support_role_arn.clone(),
            govcloud: a.govcloud,
            origin: "config".to_owned(),
            created_by: None,
            created_at: None,
            updated_at: None,
        }
    }

    /// The account as the support-plan rules take it.
    pub fn account(&self) -> AwsAccount {
        AwsAccount {
            id: self.id.clone(),
            name: self.name.clone(),
            support_plan: self.support_plan,
            account_team_emails: self.account_team_emails.clone(),
            support_role_arn: self.support_role_arn.clone(),
            govcloud: self.govcloud,
        }
    }
}

const ACCOUNT_COLUMNS: &str = "id, name, support_plan, account_team_emails, support_role_arn, \
    govcloud, created_by, created_at, updated_at";

macro_rules! account_from_row {
    ($row:expr) => {{
        let row = $row;
        let plan: String = row.try_get("support_plan")?;
        let emails: String = row.try_get("account_team_emails")?;
        AwsAccountRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            support_plan: SupportPlan::parse(&plan)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown support plan {plan:?}")))?,
            account_team_emails: serde_json::from_str(&emails).map_err(|_| {
                StoreError::Corrupt(format!("unreadable account_team_emails {emails:?}"))
            })?,
            support_role_arn: row.try_get("support_role_arn")?,
            govcloud: row.try_get("govcloud")?,
            origin: "api".to_owned(),
            created_by: Some(row.try_get("created_by")?),
            created_at: Some(row.try_get::<Ts, _>("created_at")?.0),
            updated_at: Some(row.try_get::<Ts, _>("updated_at")?.0),
        }
    }};
}

impl Db {
    /// The accounts added through the API, by id.
    pub async fn aws_accounts(&self) -> Result<Vec<AwsAccountRecord>> {
        on_read!(self, p, _b => {
            let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM aws_accounts ORDER BY id");
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            rows.iter().map(|row| Ok(account_from_row!(row))).collect()
        })
    }

    pub async fn aws_account(&self, id: &str) -> Result<Option<AwsAccountRecord>> {
        on_read!(self, p, _b => {
            let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM aws_accounts WHERE id = $1");
            match sqlx::query(&sql).bind(id).fetch_optional(p).await? {
                Some(row) => Ok(Some(account_from_row!(&row))),
                None => Ok(None),
            }
        })
    }
}

impl Tx {
    /// Creates or replaces the account with this id; the previous version, if any.
    pub async fn save_aws_account(
        &mut self,
        a: &AwsAccount,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<(AwsAccountRecord, Option<AwsAccountRecord>)> {
        self.note_write();
        let emails =
            serde_json::to_string(&a.account_team_emails).unwrap_or_else(|_| "[]".to_owned());
        on_tx!(self, c, backend => {
            let before = sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM aws_accounts WHERE id = $1{}", backend.for_update()
            ))
            .bind(&a.id)
            .fetch_optional(&mut *c)
            .await?;
            let before = match before {
                Some(row) => Some(account_from_row!(&row)),
                None => None,
            };
            let row = sqlx::query(&format!(
                "INSERT INTO aws_accounts (id, name, support_plan, account_team_emails, \
                 support_role_arn, govcloud, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 support_plan = excluded.support_plan, \
                 account_team_emails = excluded.account_team_emails, \
                 support_role_arn = excluded.support_role_arn, \
                 govcloud = excluded.govcloud, updated_at = excluded.updated_at RETURNING {ACCOUNT_COLUMNS}"
            ))
            .bind(&a.id)
            .bind(&a.name)
            .bind(a.support_plan.as_str())
            .bind(emails)
            .bind(&a.support_role_arn)
            .bind(a.govcloud)
            .bind(by)
            .bind(Ts(at))
            .fetch_one(&mut *c)
            .await?;
            Ok((account_from_row!(&row), before))
        })
    }

    pub async fn delete_aws_account(&mut self, id: &str) -> Result<Option<AwsAccountRecord>> {
        on_tx!(self, c, _b => {
            let row = sqlx::query(&format!(
                "DELETE FROM aws_accounts WHERE id = $1 RETURNING {ACCOUNT_COLUMNS}"
            ))
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                Some(row) => {
                    self.note_write();
                    Ok(Some(account_from_row!(&row)))
                }
                None => Ok(None),
            }
        })
    }
}

/// The case severities AWS offers an account (DescribeSeverityLevels), as last asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SeverityLevelsRecord {
    pub account_id: String,
    /// What AWS last answered; none until it has answered once (a failed ask keeps the
    /// answer before it).
    pub levels: Option<Vec<CaseSeverity>>,
    /// Why the last ask failed; none when it succeeded.
    pub error: Option<String>,
    pub checked_at: DateTime<Utc>,
}

macro_rules! levels_from_row {
    ($row:expr) => {{
        let row = $row;
        let levels: Option<String> = row.try_get("levels")?;
        let levels = match levels {
            None => None,
            Some(text) => {
                let codes: Vec<String> = serde_json::from_str(&text).map_err(|_| {
                    StoreError::Corrupt(format!("unreadable severity levels {text:?}"))
                })?;
                Some(
                    codes
                        .iter()
                        .filter_map(|c| CaseSeverity::parse(c))
                        .collect(),
                )
            }
        };
        SeverityLevelsRecord {
            account_id: row.try_get("account_id")?,
            levels,
            error: row.try_get("error")?,
            checked_at: row.try_get::<Ts, _>("checked_at")?.0,
        }
    }};
}

impl Db {
    /// What AWS last said about each account's case severities, by account id.
    pub async fn severity_levels(&self) -> Result<Vec<SeverityLevelsRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT account_id, levels, error, checked_at FROM aws_severity_levels \
                 ORDER BY account_id",
            )
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(levels_from_row!(row))).collect()
        })
    }
}

impl Tx {
    /// What AWS last said about one account's case severities.
    pub async fn severity_levels_of(
        &mut self,
        account_id: &str,
    ) -> Result<Option<SeverityLevelsRecord>> {
        on_tx!(self, c, _b => {
            let row = sqlx::query(
                "SELECT account_id, levels, error, checked_at FROM aws_severity_levels \
                 WHERE account_id = $1",
            )
            .bind(account_id)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                Some(row) => Ok(Some(levels_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// Records an ask of DescribeSeverityLevels: its answer (`levels`) or why it failed
    /// (`error`), in which case the last answer is kept unless `forget` (AWS said the account
    /// has no Support API at all, so what it offered before no longer holds).
    pub async fn save_severity_levels(
        &mut self,
        account_id: &str,
        levels: Option<&[CaseSeverity]>,
        error: Option<&str>,
        forget: bool,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        let levels = levels.map(|levels| {
            let codes: Vec<&str> = levels.iter().map(|l| l.as_str()).collect();
            serde_json::to_string(&codes).unwrap_or_else(|_| "[]".to_owned())
        });
        let kept = if forget {
            "excluded.levels"
        } else {
            "COALESCE(excluded.levels, aws_severity_levels.levels)"
        };
        let sql = format!(
            "INSERT INTO aws_severity_levels (account_id, levels, error, checked_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id) DO UPDATE SET levels = {kept}, \
             error = excluded.error, checked_at = excluded.checked_at"
        );
        on_tx!(self, c, _b => {
            sqlx::query(&sql)
            .bind(account_id)
            .bind(levels)
            .bind(error)
            .bind(Ts(at))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }
}
