//! The mail log: messages that came in and letters that went out, once per Message-ID; and
//! people's opt-outs of receipts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use crate::{on_read, on_tx, Db, Result, Ts, Tx};

/// One message in the mail log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MailRecord {
    pub id: i64,
    /// Without angle brackets.
    pub message_id: String,
    /// `in` or `out`.
    pub direction: String,
    /// The inbox a message came through, or the kind of letter.
    pub source: String,
    pub sender: String,
    pub recipient: Option<String>,
    pub subject: String,
    pub ticket_id: Option<i64>,
    pub comment_id: Option<i64>,
    /// In: `ticket`, `comment`, `held`, `ignored` or `refused`; out: `queued`.
    pub outcome: String,
    pub reason: Option<String>,
    /// The whole text of a message that came in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub at: DateTime<Utc>,
}

/// A message to write to the mail log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMailRecord {
    pub message_id: String,
    pub direction: &'static str,
    pub source: String,
    pub sender: String,
    pub recipient: Option<String>,
    pub subject: String,
    pub ticket_id: Option<i64>,
    pub comment_id: Option<i64>,
    pub outcome: String,
    pub reason: Option<String>,
    pub body: Option<String>,
    pub at: DateTime<Utc>,
}

const COLUMNS: &str = "id, message_id, direction, source, sender, recipient, subject, ticket_id, \
                       comment_id, outcome, reason, body, at";

macro_rules! mail_from {
    ($row:expr) => {
        MailRecord {
            id: $row.try_get("id")?,
            message_id: $row.try_get("message_id")?,
            direction: $row.try_get("direction")?,
            source: $row.try_get("source")?,
            sender: $row.try_get("sender")?,
            recipient: $row.try_get("recipient")?,
            subject: $row.try_get("subject")?,
            ticket_id: $row.try_get("ticket_id")?,
            comment_id: $row.try_get("comment_id")?,
            outcome: $row.try_get("outcome")?,
            reason: $row.try_get("reason")?,
            body: $row.try_get("body")?,
            at: $row.try_get::<Ts, _>("at")?.0,
        }
    };
}

impl Tx {
    /// One message of the mail log, read for a change.
    pub async fn mail_record(&mut self, id: i64) -> Result<Option<MailRecord>> {
        on_tx!(self, c, backend => {
            let sql = format!(
                "SELECT {COLUMNS} FROM mail_messages WHERE id = $1{}",
                backend.for_update()
            );
            let row = sqlx::query(&sql).bind(id).fetch_optional(c).await?;
            match row {
                Some(row) => Ok(Some(mail_from!(row))),
                None => Ok(None),
            }
        })
    }

    /// Writes `m` to the mail log unless its Message-ID is there already; returns its id, or
    /// `None` when the message was logged before (by this node or another).
    pub async fn log_mail(&mut self, m: &NewMailRecord) -> Result<Option<i64>> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(
                "INSERT INTO mail_messages (message_id, direction, source, sender, recipient, \
                 subject, ticket_id, comment_id, outcome, reason, body, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (direction, message_id) DO NOTHING RETURNING id",
            )
            .bind(&m.message_id)
            .bind(m.direction)
            .bind(&m.source)
            .bind(&m.sender)
            .bind(&m.recipient)
            .bind(&m.subject)
            .bind(m.ticket_id)
            .bind(m.comment_id)
            .bind(&m.outcome)
            .bind(&m.reason)
            .bind(&m.body)
            .bind(Ts(m.at))
            .fetch_optional(c)
            .await?;
            row.map(|r| r.try_get("id")).transpose().map_err(Into::into)
        })
    }

    /// Records what a logged message did.
    pub async fn settle_mail(
        &mut self,
        id: i64,
        outcome: &str,
        ticket_id: Option<i64>,
        comment_id: Option<i64>,
        reason: Option<&str>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "UPDATE mail_messages SET outcome = $2, ticket_id = $3, comment_id = $4, reason = $5 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(outcome)
            .bind(ticket_id)
            .bind(comment_id)
            .bind(reason)
            .execute(c)
            .await?;
            Ok(())
        })
    }

    /// The ticket the newest logged message among `message_ids` belongs to.
    pub async fn ticket_of_mail(&mut self, message_ids: &[String]) -> Result<Option<i64>> {
        for id in message_ids.iter().take(50) {
            let found: Option<Option<i64>> = on_tx!(self, c, _b => {
                sqlx::query_scalar(
                    "SELECT ticket_id FROM mail_messages WHERE message_id = $1 \
                     AND (direction = 'out' OR outcome IN ('ticket', 'comment')) \
                     ORDER BY direction DESC LIMIT 1",
                )
                    .bind(id)
                    .fetch_optional(c)
                    .await?
            });
            if let Some(Some(ticket)) = found {
                return Ok(Some(ticket));
            }
        }
        Ok(None)
    }

    /// The first Message-ID of a ticket's mail (the thread's root) and the newest that came
    /// in (what a letter answers).
    pub async fn mail_thread(
        &mut self,
        ticket_id: i64,
    ) -> Result<(Option<String>, Option<String>)> {
        on_tx!(self, c, _b => {
            let first: Option<String> = sqlx::query_scalar(
                "SELECT message_id FROM mail_messages WHERE ticket_id = $1 ORDER BY id LIMIT 1",
            )
            .bind(ticket_id)
            .fetch_optional(&mut *c)
            .await?;
            let last_in: Option<String> = sqlx::query_scalar(
                "SELECT message_id FROM mail_messages WHERE ticket_id = $1 AND direction = 'in' \
                 AND outcome IN ('ticket', 'comment') ORDER BY id DESC LIMIT 1",
            )
            .bind(ticket_id)
            .fetch_optional(&mut *c)
            .await?;
            Ok((first, last_in))
        })
    }

    /// Messages logged from `sender` since `since`.
    pub async fn mail_from_since(&mut self, sender: &str, since: DateTime<Utc>) -> Result<i64> {
        on_tx!(self, c, _b => {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM mail_messages WHERE direction = 'in' AND sender = $1 \
                 AND at >= $2 AND outcome IN ('ticket', 'comment')",
            )
            .bind(sender)
            .bind(Ts(since))
            .fetch_one(c)
            .await?)
        })
    }

    /// Whether `email` opted out of receipts.
    pub async fn mail_opted_out(&mut self, email: &str) -> Result<bool> {
        on_tx!(self, c, _b => {
            let found: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM mail_opt_outs WHERE email = $1")
                    .bind(email.to_ascii_lowercase())
                    .fetch_one(c)
                    .await?;
            Ok(found > 0)
        })
    }

    /// Records whether `email` gets receipts.
    pub async fn set_mail_receipts(
        &mut self,
        email: &str,
        receipts: bool,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        let email = email.to_ascii_lowercase();
        on_tx!(self, c, _b => {
            if receipts {
                sqlx::query("DELETE FROM mail_opt_outs WHERE email = $1")
                    .bind(&email)
                    .execute(c)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT INTO mail_opt_outs (email, at) VALUES ($1, $2) \
                     ON CONFLICT (email) DO NOTHING",
                )
                .bind(&email)
                .bind(Ts(at))
                .execute(c)
                .await?;
            }
            Ok(())
        })
    }
}

/// Which messages of the mail log to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailFilter {
    pub outcome: Option<String>,
    pub ticket_id: Option<i64>,
    pub direction: Option<String>,
    pub limit: i64,
}

impl Db {
    /// Whether a message with this Message-ID is in the mail log already.
    pub async fn mail_logged(&self, direction: &str, message_id: &str) -> Result<bool> {
        on_read!(self, p, _b => {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM mail_messages WHERE direction = $1 AND message_id = $2",
            )
            .bind(direction)
            .bind(message_id)
            .fetch_optional(p)
            .await?;
            Ok(found.is_some())
        })
    }
}

impl Db {
    /// The mail log, newest first.
    pub async fn mail_log(&self, f: &MailFilter) -> Result<Vec<MailRecord>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM mail_messages \
                 WHERE ($1 IS NULL OR outcome = $1) AND ($2 IS NULL OR ticket_id = $2) \
                   AND ($3 IS NULL OR direction = $3) \
                 ORDER BY id DESC LIMIT $4"
            ))
            .bind(&f.outcome)
            .bind(f.ticket_id)
            .bind(&f.direction)
            .bind(f.limit.clamp(1, 1000))
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(mail_from!(row))).collect()
        })
    }

    /// Whether `email` opted out of receipts.
    pub async fn mail_receipts(&self, email: &str) -> Result<bool> {
        on_read!(self, p, _b => {
            let found: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM mail_opt_outs WHERE email = $1")
                    .bind(email.to_ascii_lowercase())
                    .fetch_one(p)
                    .await?;
            Ok(found == 0)
        })
    }
}

/// A letter template as an admin rewrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTemplate {
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

macro_rules! template_from {
    ($row:expr) => {
        StoredTemplate {
            kind: $row.try_get("kind")?,
            subject: $row.try_get("subject")?,
            body: $row.try_get("body")?,
            updated_by: $row.try_get("updated_by")?,
            updated_at: $row.try_get::<Ts, _>("updated_at")?.0,
        }
    };
}

impl Db {
    /// The letter templates admins rewrote.
    pub async fn mail_templates(&self) -> Result<Vec<StoredTemplate>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT kind, subject, body, updated_by, updated_at FROM mail_templates ORDER BY kind",
            )
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| Ok(template_from!(r))).collect()
        })
    }
}

impl Tx {
    /// The rewritten template of `kind`, if any.
    pub async fn mail_template(&mut self, kind: &str) -> Result<Option<StoredTemplate>> {
        on_tx!(self, c, backend => {
            let sql = format!(
                "SELECT kind, subject, body, updated_by, updated_at FROM mail_templates WHERE kind = $1{}",
                backend.for_update()
            );
            let row = sqlx::query(&sql)
            .bind(kind)
            .fetch_optional(c)
            .await?;
            match row {
                Some(r) => Ok(Some(template_from!(&r))),
                None => Ok(None),
            }
        })
    }

    /// Keeps `t` as the template of its kind.
    pub async fn save_mail_template(&mut self, t: &StoredTemplate) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO mail_templates (kind, subject, body, updated_by, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (kind) DO UPDATE SET subject = excluded.subject, body = excluded.body, \
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            )
            .bind(&t.kind)
            .bind(&t.subject)
            .bind(&t.body)
            .bind(&t.updated_by)
            .bind(Ts(t.updated_at))
            .execute(c)
            .await?;
            Ok(())
        })
    }

    /// Drops the rewritten template of `kind`; the configured one is used again.
    pub async fn delete_mail_template(&mut self, kind: &str) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("DELETE FROM mail_templates WHERE kind = $1")
                .bind(kind)
                .execute(c)
                .await?;
            Ok(())
        })
    }
}
