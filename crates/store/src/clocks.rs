//! The clocks of open tickets (SLA due times and escalation tier) and their AWS Support cases.

use chrono::{DateTime, Utc};
use opsdesk_domain::{CapSource, SupportPlan};
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use crate::{on_read, on_tx, Backend, Db, Result, StoreError, Ts, Tx};

/// What the watcher keeps for one ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct TicketClock {
    pub ticket_id: i64,
    /// When the watcher looks at the ticket next; empty when nothing is left to watch.
    pub check_at: Option<DateTime<Utc>>,
    /// The SLA policy the due times come from.
    pub sla_policy: Option<String>,
    pub first_response_due_at: Option<DateTime<Utc>>,
    pub first_response_warn_at: Option<DateTime<Utc>>,
    pub resolution_due_at: Option<DateTime<Utc>>,
    pub resolution_warn_at: Option<DateTime<Utc>>,
    /// SLA events already announced, e.g. `first_response.warning`.
    pub announced: Vec<String>,
    pub escalation_policy: Option<String>,
    /// The tier the ticket is at (0 = the first), when a policy applies.
    pub tier: Option<i64>,
    pub tier_since: Option<DateTime<Utc>>,
    /// When the ticket moves up if still unacknowledged.
    pub escalate_at: Option<DateTime<Utc>>,
    /// When the first-response clock stopped (the acknowledgement, or the resolution of a
    /// ticket never acknowledged).
    pub response_at: Option<DateTime<Utc>>,
    /// Business seconds to the first response, pending time left out.
    pub response_seconds: Option<i64>,
    pub response_met: Option<bool>,
    /// Business seconds to the resolution while resolved or closed, pending time left out.
    pub resolution_seconds: Option<i64>,
    pub resolution_met: Option<bool>,
    /// How often the ticket was reopened.
    pub reopens: i64,
    /// Wall-clock seconds spent in `new`, `acknowledged`, `in_progress` and `pending`, up to
    /// the resolution (or the last look, while open).
    pub status_seconds: [i64; 4],
}

const CLOCK_COLUMNS: &str = "ticket_id, check_at, sla_policy, first_response_due_at, \
    first_response_warn_at, resolution_due_at, resolution_warn_at, announced, escalation_policy, \
    tier, tier_since, escalate_at, response_at, response_seconds, response_met, \
    resolution_seconds, resolution_met, reopens, new_seconds, acknowledged_seconds, \
    in_progress_seconds, pending_seconds";

macro_rules! clock_from_row {
    ($row:expr) => {{
        let row = $row;
        let announced: String = row.try_get("announced")?;
        let ts = |name: &str| -> Result<Option<DateTime<Utc>>> {
            Ok(row.try_get::<Option<Ts>, _>(name)?.map(|t| t.0))
        };
        TicketClock {
            ticket_id: row.try_get("ticket_id")?,
            check_at: ts("check_at")?,
            sla_policy: row.try_get("sla_policy")?,
            first_response_due_at: ts("first_response_due_at")?,
            first_response_warn_at: ts("first_response_warn_at")?,
            resolution_due_at: ts("resolution_due_at")?,
            resolution_warn_at: ts("resolution_warn_at")?,
            announced: serde_json::from_str(&announced)
                .map_err(|_| StoreError::Corrupt(format!("unreadable announced {announced:?}")))?,
            escalation_policy: row.try_get("escalation_policy")?,
            tier: row.try_get("tier")?,
            tier_since: ts("tier_since")?,
            escalate_at: ts("escalate_at")?,
            response_at: ts("response_at")?,
            response_seconds: row.try_get("response_seconds")?,
            response_met: row
                .try_get::<Option<i64>, _>("response_met")?
                .map(|m| m != 0),
            resolution_seconds: row.try_get("resolution_seconds")?,
            resolution_met: row
                .try_get::<Option<i64>, _>("resolution_met")?
                .map(|m| m != 0),
            reopens: row.try_get("reopens")?,
            status_seconds: [
                row.try_get("new_seconds")?,
                row.try_get("acknowledged_seconds")?,
                row.try_get("in_progress_seconds")?,
                row.try_get("pending_seconds")?,
            ],
        }
    }};
}

/// A ticket's AWS Support case, from the request to its resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SupportCaseRecord {
    pub ticket_id: i64,
    pub account_id: String,
    /// `requested` (opsdesk is opening it), `opened`, `resolved`, `unavailable` (the plan has
    /// no AWS Support API), `failed` (AWS refused it; see `detail`) or `cancelled` (the ticket
    /// was resolved before the case was opened).
    pub state: String,
    /// AWS's case id, once opened.
    pub case_id: Option<String>,
    /// The number shown in the AWS Support Center.
    pub display_id: Option<String>,
    /// The case severity the ticket's severity asks for.
    pub requested_severity: String,
    /// The severity the case was opened with, capped by the plan.
    pub severity: Option<String>,
    pub service_code: String,
    pub category_code: String,
    pub subject: String,
    pub body: String,
    /// The AWS account team, copied on the case.
    pub cc: Vec<String>,
    /// The case's status as AWS last reported it.
    pub aws_status: Option<String>,
    /// Why the case is as it is: the plan's cap, the last error.
    pub detail: String,
    pub attempts: i64,
    pub next_sync_at: DateTime<Utc>,
    /// The newest AWS message mirrored onto the ticket.
    pub last_message_at: Option<DateTime<Utc>>,
    /// When AWS first answered.
    pub first_reply_at: Option<DateTime<Utc>>,
    /// The newest public comment of the ticket already added to the case.
    pub sent_comment_id: i64,
    /// Of the next public comment, a reply long enough to go as several messages, how many
    /// parts AWS has taken already (sent again they would repeat at AWS).
    pub sent_parts: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The plan whose table applied when the case was decided (the configured plan, or what
    /// AWS moved it to); none for cases from before opsdesk kept it.
    pub support_plan: Option<SupportPlan>,
    /// `aws` when DescribeSeverityLevels decided the severity, `plan` when the table did.
    pub severity_source: Option<CapSource>,
}

const CASE_COLUMNS: &str = "ticket_id, account_id, state, case_id, display_id, \
    requested_severity, severity, service_code, category_code, subject, body, cc, aws_status, \
    detail, attempts, next_sync_at, last_message_at, first_reply_at, sent_comment_id, created_by, \
    created_at, updated_at, support_plan, severity_source, sent_parts";

macro_rules! case_from_row {
    ($row:expr) => {{
        let row = $row;
        let cc: String = row.try_get("cc")?;
        SupportCaseRecord {
            ticket_id: row.try_get("ticket_id")?,
            account_id: row.try_get("account_id")?,
            state: row.try_get("state")?,
            case_id: row.try_get("case_id")?,
            display_id: row.try_get("display_id")?,
            requested_severity: row.try_get("requested_severity")?,
            severity: row.try_get("severity")?,
            service_code: row.try_get("service_code")?,
            category_code: row.try_get("category_code")?,
            subject: row.try_get("subject")?,
            body: row.try_get("body")?,
            cc: serde_json::from_str(&cc)
                .map_err(|_| StoreError::Corrupt(format!("unreadable cc {cc:?}")))?,
            aws_status: row.try_get("aws_status")?,
            detail: row.try_get("detail")?,
            attempts: row.try_get("attempts")?,
            next_sync_at: row.try_get::<Ts, _>("next_sync_at")?.0,
            last_message_at: row
                .try_get::<Option<Ts>, _>("last_message_at")?
                .map(|t| t.0),
            first_reply_at: row.try_get::<Option<Ts>, _>("first_reply_at")?.map(|t| t.0),
            sent_comment_id: row.try_get("sent_comment_id")?,
            sent_parts: row.try_get("sent_parts")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
            updated_at: row.try_get::<Ts, _>("updated_at")?.0,
            support_plan: row
                .try_get::<Option<String>, _>("support_plan")?
                .and_then(|p| SupportPlan::parse(&p)),
            severity_source: row
                .try_get::<Option<String>, _>("severity_source")?
                .and_then(|s| CapSource::parse(&s)),
        }
    }};
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

impl Db {
    /// Tickets whose clocks are due to be looked at, oldest first.
    pub async fn due_clocks(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<i64>> {
        on_read!(self, p, _b => {
            Ok(sqlx::query_scalar(
                "SELECT ticket_id FROM ticket_clocks WHERE check_at IS NOT NULL AND check_at <= $1 \
                 ORDER BY check_at, ticket_id LIMIT $2",
            )
            .bind(Ts(now))
            .bind(limit)
            .fetch_all(p)
            .await?)
        })
    }

    pub async fn ticket_clock(&self, ticket_id: i64) -> Result<Option<TicketClock>> {
        on_read!(self, p, _b => {
            let sql = format!("SELECT {CLOCK_COLUMNS} FROM ticket_clocks WHERE ticket_id = $1");
            match sqlx::query(&sql).bind(ticket_id).fetch_optional(p).await? {
                Some(row) => Ok(Some(clock_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    pub async fn support_case(&self, ticket_id: i64) -> Result<Option<SupportCaseRecord>> {
        on_read!(self, p, _b => {
            let sql = format!("SELECT {CASE_COLUMNS} FROM support_cases WHERE ticket_id = $1");
            match sqlx::query(&sql).bind(ticket_id).fetch_optional(p).await? {
                Some(row) => Ok(Some(case_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// The AWS Support cases asked for most recently, newest first.
    pub async fn recent_support_cases(&self, limit: i64) -> Result<Vec<SupportCaseRecord>> {
        on_read!(self, p, _b => {
            let sql = format!(
                "SELECT {CASE_COLUMNS} FROM support_cases \
                 ORDER BY created_at DESC, ticket_id DESC LIMIT $1"
            );
            let rows = sqlx::query(&sql).bind(limit).fetch_all(p).await?;
            let mut cases = Vec::with_capacity(rows.len());
            for row in &rows {
                cases.push(case_from_row!(row));
            }
            Ok(cases)
        })
    }

    /// Whether any case waits to be opened or followed; a cheap read before claiming.
    pub async fn support_cases_due(&self, now: DateTime<Utc>) -> Result<bool> {
        on_read!(self, p, _b => {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM support_cases WHERE state IN ('requested', 'opened') \
                 AND next_sync_at <= $1",
            )
            .bind(Ts(now))
            .fetch_one(p)
            .await?;
            Ok(n > 0)
        })
    }

    /// AWS Support cases asked for since `since`, per account and requested severity.
    pub async fn case_counts(&self, since: DateTime<Utc>) -> Result<Vec<(String, String, i64)>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT account_id, requested_severity, COUNT(*) AS n FROM support_cases \
                 WHERE created_at >= $1 GROUP BY account_id, requested_severity",
            )
            .bind(Ts(since))
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("account_id")?, r.try_get("requested_severity")?, r.try_get("n")?)))
                .collect()
        })
    }

    /// For each of `ticket_ids` whose signals name an AWS account: the account and service of
    /// its newest such signal. Each ticket's signals are read newest first and only until one
    /// names an account, so a ticket with a long history costs no more than a new one.
    pub async fn tickets_aws_context(
        &self,
        ticket_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, (Option<String>, Option<String>)>> {
        if ticket_ids.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        on_read!(self, p, _b => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT s.ticket_id, s.account, s.service FROM signals s WHERE s.id IN (\
                 SELECT (SELECT n.id FROM signals n WHERE n.ticket_id = t.id \
                 AND n.account IS NOT NULL ORDER BY n.id DESC LIMIT 1) \
                 FROM tickets t WHERE t.id IN (",
            );
            let mut list = qb.separated(", ");
            for id in ticket_ids {
                list.push_bind(*id);
            }
            qb.push("))");
            let rows = qb.build().persistent(false).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok((r.try_get("ticket_id")?, (r.try_get("account")?, r.try_get("service")?))))
                .collect()
        })
    }
}

impl Tx {
    pub async fn ticket_clock(&mut self, ticket_id: i64) -> Result<Option<TicketClock>> {
        on_tx!(self, c, _b => {
            let sql = format!("SELECT {CLOCK_COLUMNS} FROM ticket_clocks WHERE ticket_id = $1");
            match sqlx::query(&sql).bind(ticket_id).fetch_optional(&mut *c).await? {
                Some(row) => Ok(Some(clock_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// The stored clocks of these tickets.
    pub async fn ticket_clocks(&mut self, ticket_ids: &[i64]) -> Result<Vec<TicketClock>> {
        let mut out = Vec::with_capacity(ticket_ids.len());
        for chunk in ticket_ids.chunks(500) {
            on_tx!(self, c, _b => {
                let mut qb = sqlx::QueryBuilder::new(format!(
                    "SELECT {CLOCK_COLUMNS} FROM ticket_clocks WHERE ticket_id IN ("
                ));
                let mut list = qb.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                qb.push(")");
                for row in qb.build().persistent(false).fetch_all(&mut *c).await? {
                    out.push(clock_from_row!(&row));
                }
            });
        }
        Ok(out)
    }

    /// Writes every field of these clocks, creating those missing, a hundred per statement.
    pub async fn save_ticket_clocks(&mut self, clocks: &[TicketClock]) -> Result<()> {
        if clocks.is_empty() {
            return Ok(());
        }
        self.note_write();
        for chunk in clocks.chunks(100) {
            on_tx!(self, c, _b => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO ticket_clocks (ticket_id, check_at, sla_policy, first_response_due_at, \
                     first_response_warn_at, resolution_due_at, resolution_warn_at, announced, \
                     escalation_policy, tier, tier_since, escalate_at, response_at, \
                     response_seconds, response_met, resolution_seconds, resolution_met, reopens, \
                     new_seconds, acknowledged_seconds, in_progress_seconds, pending_seconds) ",
                );
                qb.push_values(chunk, |mut b, k| {
                    b.push_bind(k.ticket_id)
                        .push_bind(k.check_at.map(Ts))
                        .push_bind(k.sla_policy.clone())
                        .push_bind(k.first_response_due_at.map(Ts))
                        .push_bind(k.first_response_warn_at.map(Ts))
                        .push_bind(k.resolution_due_at.map(Ts))
                        .push_bind(k.resolution_warn_at.map(Ts))
                        .push_bind(json_list(&k.announced))
                        .push_bind(k.escalation_policy.clone())
                        .push_bind(k.tier)
                        .push_bind(k.tier_since.map(Ts))
                        .push_bind(k.escalate_at.map(Ts))
                        .push_bind(k.response_at.map(Ts))
                        .push_bind(k.response_seconds)
                        .push_bind(k.response_met.map(i64::from))
                        .push_bind(k.resolution_seconds)
                        .push_bind(k.resolution_met.map(i64::from))
                        .push_bind(k.reopens)
                        .push_bind(k.status_seconds[0])
                        .push_bind(k.status_seconds[1])
                        .push_bind(k.status_seconds[2])
                        .push_bind(k.status_seconds[3]);
                });
                qb.push(
                    " ON CONFLICT (ticket_id) DO UPDATE SET check_at = excluded.check_at, \
                     sla_policy = excluded.sla_policy, first_response_due_at = excluded.first_response_due_at, \
                     first_response_warn_at = excluded.first_response_warn_at, \
                     resolution_due_at = excluded.resolution_due_at, \
                     resolution_warn_at = excluded.resolution_warn_at, announced = excluded.announced, \
                     escalation_policy = excluded.escalation_policy, tier = excluded.tier, \
                     tier_since = excluded.tier_since, escalate_at = excluded.escalate_at, \
                     response_at = excluded.response_at, response_seconds = excluded.response_seconds, \
                     response_met = excluded.response_met, \
                     resolution_seconds = excluded.resolution_seconds, \
                     resolution_met = excluded.resolution_met, reopens = excluded.reopens, \
                     new_seconds = excluded.new_seconds, \
                     acknowledged_seconds = excluded.acknowledged_seconds, \
                     in_progress_seconds = excluded.in_progress_seconds, \
                     pending_seconds = excluded.pending_seconds",
                );
                qb.build().persistent(false).execute(&mut *c).await?;
            });
        }
        Ok(())
    }

    /// Writes every field of the clock, creating it when missing.
    pub async fn save_ticket_clock(&mut self, k: &TicketClock) -> Result<()> {
        self.save_ticket_clocks(std::slice::from_ref(k)).await
    }

    pub async fn support_case(&mut self, ticket_id: i64) -> Result<Option<SupportCaseRecord>> {
        on_tx!(self, c, b => {
            let sql = format!(
                "SELECT {CASE_COLUMNS} FROM support_cases WHERE ticket_id = $1{}",
                b.for_update()
            );
            match sqlx::query(&sql).bind(ticket_id).fetch_optional(&mut *c).await? {
                Some(row) => Ok(Some(case_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// Stores the case of a ticket, creating or replacing it.
    pub async fn save_support_case(&mut self, s: &SupportCaseRecord) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO support_cases (ticket_id, account_id, state, case_id, display_id, \
                 requested_severity, severity, service_code, category_code, subject, body, cc, \
                 aws_status, detail, attempts, next_sync_at, lease_until, last_message_at, \
                 sent_comment_id, created_by, created_at, updated_at, first_reply_at, \
                 support_plan, severity_source, sent_parts) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL, \
                 $17, $18, $19, $20, $21, $22, $23, $24, $25) \
                 ON CONFLICT (ticket_id) DO UPDATE SET account_id = excluded.account_id, \
                 state = excluded.state, case_id = excluded.case_id, display_id = excluded.display_id, \
                 requested_severity = excluded.requested_severity, severity = excluded.severity, \
                 service_code = excluded.service_code, category_code = excluded.category_code, \
                 subject = excluded.subject, body = excluded.body, cc = excluded.cc, \
                 aws_status = excluded.aws_status, detail = excluded.detail, \
                 attempts = excluded.attempts, next_sync_at = excluded.next_sync_at, \
                 lease_until = NULL, last_message_at = excluded.last_message_at, \
                 sent_comment_id = excluded.sent_comment_id, created_by = excluded.created_by, \
                 created_at = excluded.created_at, updated_at = excluded.updated_at, \
                 first_reply_at = excluded.first_reply_at, support_plan = excluded.support_plan, \
                 severity_source = excluded.severity_source, sent_parts = excluded.sent_parts",
            )
            .bind(s.ticket_id)
            .bind(&s.account_id)
            .bind(&s.state)
            .bind(&s.case_id)
            .bind(&s.display_id)
            .bind(&s.requested_severity)
            .bind(&s.severity)
            .bind(&s.service_code)
            .bind(&s.category_code)
            .bind(&s.subject)
            .bind(&s.body)
            .bind(json_list(&s.cc))
            .bind(&s.aws_status)
            .bind(&s.detail)
            .bind(s.attempts)
            .bind(Ts(s.next_sync_at))
            .bind(s.last_message_at.map(Ts))
            .bind(s.sent_comment_id)
            .bind(&s.created_by)
            .bind(Ts(s.created_at))
            .bind(Ts(s.updated_at))
            .bind(s.first_reply_at.map(Ts))
            .bind(s.support_plan.map(SupportPlan::as_str))
            .bind(s.severity_source.map(CapSource::as_str))
            .bind(s.sent_parts)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Takes up to `limit` cases due to be opened or followed, leased until `lease_until` so
    /// no other node works on them meanwhile.
    pub async fn claim_support_cases(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<SupportCaseRecord>> {
        let cases = on_tx!(self, c, b => {
            let sql = format!(
                "SELECT ticket_id FROM support_cases WHERE state IN ('requested', 'opened') \
                 AND next_sync_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
                 ORDER BY next_sync_at, ticket_id LIMIT $2{}",
                match b {
                    Backend::Sqlite => "",
                    Backend::Postgres => " FOR UPDATE SKIP LOCKED",
                }
            );
            let ids: Vec<i64> = sqlx::query_scalar(&sql)
                .bind(Ts(now))
                .bind(limit)
                .fetch_all(&mut *c)
                .await?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let sql = format!(
                    "UPDATE support_cases SET lease_until = $1 WHERE ticket_id = $2 \
                     RETURNING {CASE_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(Ts(lease_until))
                    .bind(id)
                    .fetch_one(&mut *c)
                    .await?;
                out.push(case_from_row!(&row));
            }
            out
        });
        if !cases.is_empty() {
            self.note_write();
        }
        Ok(cases)
    }

    /// Asks for the ticket's case to be looked at by `at` (sooner if already due).
    pub async fn hurry_support_case(&mut self, ticket_id: i64, at: DateTime<Utc>) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "UPDATE support_cases SET next_sync_at = $1 WHERE ticket_id = $2 \
                 AND state = 'opened' AND next_sync_at > $1",
            )
            .bind(Ts(at))
            .bind(ticket_id)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// The id of the ticket's newest comment; 0 without comments.
    pub async fn newest_comment_id(&mut self, ticket_id: i64) -> Result<i64> {
        on_tx!(self, c, _b => {
            Ok(sqlx::query_scalar::<_, Option<i64>>(
                "SELECT MAX(id) FROM comments WHERE ticket_id = $1",
            )
            .bind(ticket_id)
            .fetch_one(&mut *c)
            .await?
            .unwrap_or(0))
        })
    }

    /// Team members' addresses, for notifications to a team.
    pub async fn team_emails(&mut self, team: &str) -> Result<Vec<String>> {
        on_tx!(self, c, _b => {
            Ok(sqlx::query_scalar(
                "SELECT u.email FROM users u JOIN team_members m ON m.user_id = u.id \
                 JOIN teams t ON t.id = m.team_id WHERE t.name = $1 AND u.active = $2 ORDER BY u.email",
            )
            .bind(team)
            .bind(true)
            .fetch_all(&mut *c)
            .await?)
        })
    }
    /// The lead of a team, when they are an active person.
    pub async fn team_lead_email(&mut self, team: &str) -> Result<Option<String>> {
        on_tx!(self, c, _b => {
            Ok(sqlx::query_scalar(
                "SELECT u.email FROM teams t JOIN users u ON u.id = t.lead_user_id \
                 WHERE t.name = $1 AND u.active = $2",
            )
            .bind(team)
            .bind(true)
            .fetch_optional(&mut *c)
            .await?)
        })
    }

    /// The AWS accounts a ticket is about, most specific first: the account of its newest
    /// signal that names one, then its workload's accounts.
    pub async fn ticket_account_ids(
        &mut self,
        ticket_id: i64,
        workload: Option<&str>,
    ) -> Result<Vec<String>> {
        on_tx!(self, c, _b => {
            let mut ids: Vec<String> = sqlx::query_scalar(
                "SELECT account FROM signals WHERE ticket_id = $1 AND account IS NOT NULL \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(ticket_id)
            .fetch_all(&mut *c)
            .await?;
            if let Some(w) = workload {
                let accounts: Option<String> =
                    sqlx::query_scalar("SELECT accounts FROM workloads WHERE name = $1")
                        .bind(w)
                        .fetch_optional(&mut *c)
                        .await?;
                if let Some(accounts) = accounts {
                    let list: Vec<String> = serde_json::from_str(&accounts).map_err(|_| {
                        StoreError::Corrupt(format!("unreadable workload accounts {accounts:?}"))
                    })?;
                    ids.extend(list.into_iter().filter(|a| !ids.contains(a)).collect::<Vec<_>>());
                }
            }
            Ok(ids)
        })
    }

    /// The account team of an AWS account added through the API.
    pub async fn aws_account_team(&mut self, id: &str) -> Result<Option<Vec<String>>> {
        on_tx!(self, c, _b => {
            let emails: Option<String> =
                sqlx::query_scalar("SELECT account_team_emails FROM aws_accounts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *c)
                    .await?;
            match emails {
                Some(e) => Ok(Some(serde_json::from_str(&e).map_err(|_| {
                    StoreError::Corrupt(format!("unreadable account_team_emails {e:?}"))
                })?)),
                None => Ok(None),
            }
        })
    }
}
