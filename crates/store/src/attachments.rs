//! Which ticket holds which file. The bytes live outside the database, by their SHA-256.

use chrono::{DateTime, Utc};
use opsdesk_domain::attachment::{Attachment, AttachmentSource};
use sqlx::{QueryBuilder, Row};

use crate::{on_read, on_tx, Db, Result, StoreError, Ts, Tx};

/// A file to record on a ticket; its bytes are stored already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttachment {
    pub ticket_id: i64,
    pub comment_id: Option<i64>,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub public: bool,
    pub source: AttachmentSource,
    pub added_by: String,
    pub to_case: bool,
    /// The AWS Support attachment it came from; a second copy of it is not recorded.
    pub case_attachment: Option<String>,
    pub at: DateTime<Utc>,
}

const COLUMNS: &str = "id, ticket_id, comment_id, name, content_type, size, sha256, public, \
                       source, added_by, to_case, sent_to_case_at, created_at";

macro_rules! attachment_from {
    ($row:expr) => {{
        let row = $row;
        let source: String = row.try_get("source")?;
        Attachment {
            id: row.try_get("id")?,
            ticket_id: row.try_get("ticket_id")?,
            comment_id: row.try_get("comment_id")?,
            name: row.try_get("name")?,
            content_type: row.try_get("content_type")?,
            size: row.try_get("size")?,
            sha256: row.try_get("sha256")?,
            public: row.try_get("public")?,
            source: AttachmentSource::parse(&source).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown attachment source {source:?}"))
            })?,
            added_by: row.try_get("added_by")?,
            to_case: row.try_get("to_case")?,
            sent_to_case_at: row
                .try_get::<Option<Ts>, _>("sent_to_case_at")?
                .map(|t| t.0),
            created_at: row.try_get::<Ts, _>("created_at")?.0,
        }
    }};
}

impl Tx {
    /// Records a file on a ticket; `None` when it came from an AWS Support attachment that
    /// is on the ticket already.
    pub async fn insert_attachment(&mut self, a: &NewAttachment) -> Result<Option<Attachment>> {
        self.note_write();
        let sql = format!(
            "INSERT INTO attachments (ticket_id, comment_id, name, content_type, size, sha256, \
             public, source, added_by, to_case, case_attachment, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (ticket_id, case_attachment) DO NOTHING RETURNING {COLUMNS}"
        );
        on_tx!(self, c, _b => {
            let row = sqlx::query(&sql)
                .bind(a.ticket_id)
                .bind(a.comment_id)
                .bind(&a.name)
                .bind(&a.content_type)
                .bind(a.size)
                .bind(&a.sha256)
                .bind(a.public)
                .bind(a.source.as_str())
                .bind(&a.added_by)
                .bind(a.to_case)
                .bind(&a.case_attachment)
                .bind(Ts(a.at))
                .fetch_optional(c)
                .await?;
            match row {
                Some(row) => Ok(Some(attachment_from!(&row))),
                None => Ok(None),
            }
        })
    }

    /// A ticket's file, read for a change.
    pub async fn attachment_for_update(
        &mut self,
        ticket_id: i64,
        id: i64,
    ) -> Result<Option<Attachment>> {
        let sql = format!("SELECT {COLUMNS} FROM attachments WHERE ticket_id = $1 AND id = $2");
        on_tx!(self, c, _b => {
            let row = sqlx::query(&sql).bind(ticket_id).bind(id).fetch_optional(c).await?;
            match row {
                Some(row) => Ok(Some(attachment_from!(&row))),
                None => Ok(None),
            }
        })
    }

    /// Chooses whether a file goes with the ticket's AWS Support case.
    pub async fn set_attachment_to_case(&mut self, id: i64, to_case: bool) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE attachments SET to_case = $2 WHERE id = $1")
                .bind(id)
                .bind(to_case)
                .execute(c)
                .await?;
            Ok(())
        })
    }

    /// Notes that these files went to the AWS Support case.
    pub async fn mark_sent_to_case(&mut self, ids: &[i64], at: DateTime<Utc>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.note_write();
        on_tx!(self, c, _b => {
            let mut qb = QueryBuilder::new("UPDATE attachments SET sent_to_case_at = ");
            qb.push_bind(Ts(at)).push(" WHERE id IN (");
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            qb.push(")");
            qb.build().persistent(false).execute(c).await?;
            Ok(())
        })
    }
}

impl Db {
    /// A ticket's files, oldest first.
    pub async fn attachments(&self, ticket_id: i64) -> Result<Vec<Attachment>> {
        let sql = format!("SELECT {COLUMNS} FROM attachments WHERE ticket_id = $1 ORDER BY id");
        on_read!(self, p, _b => {
            let rows = sqlx::query(&sql).bind(ticket_id).fetch_all(p).await?;
            rows.iter().map(|row| Ok(attachment_from!(row))).collect()
        })
    }

    /// One file of a ticket.
    pub async fn attachment(&self, ticket_id: i64, id: i64) -> Result<Option<Attachment>> {
        let sql = format!("SELECT {COLUMNS} FROM attachments WHERE ticket_id = $1 AND id = $2");
        on_read!(self, p, _b => {
            let row = sqlx::query(&sql).bind(ticket_id).bind(id).fetch_optional(p).await?;
            match row {
                Some(row) => Ok(Some(attachment_from!(&row))),
                None => Ok(None),
            }
        })
    }

    /// The files of these tickets, in id order.
    pub async fn attachments_of(&self, ticket_ids: &[i64]) -> Result<Vec<Attachment>> {
        if ticket_ids.is_empty() {
            return Ok(Vec::new());
        }
        on_read!(self, p, _b => {
            let mut qb = QueryBuilder::new(format!(
                "SELECT {COLUMNS} FROM attachments WHERE ticket_id IN ("
            ));
            let mut list = qb.separated(", ");
            for id in ticket_ids {
                list.push_bind(*id);
            }
            qb.push(") ORDER BY id");
            let rows = qb.build().persistent(false).fetch_all(p).await?;
            rows.iter().map(|row| Ok(attachment_from!(row))).collect()
        })
    }

    /// Files chosen for the ticket's AWS Support case that have not gone to it yet.
    pub async fn attachments_for_case(&self, ticket_id: i64) -> Result<Vec<Attachment>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM attachments WHERE ticket_id = $1 AND to_case = $2 \
             AND sent_to_case_at IS NULL ORDER BY id"
        );
        on_read!(self, p, _b => {
            let rows = sqlx::query(&sql).bind(ticket_id).bind(true).fetch_all(p).await?;
            rows.iter().map(|row| Ok(attachment_from!(row))).collect()
        })
    }
}

impl Tx {
    /// Whether comment `comment_id` of ticket `ticket_id` is public; `None` when the ticket
    /// has no such comment.
    pub async fn comment_public(
        &mut self,
        ticket_id: i64,
        comment_id: i64,
    ) -> Result<Option<bool>> {
        on_tx!(self, c, _b => {
            let found: Option<bool> = sqlx::query_scalar(
                "SELECT public FROM comments WHERE ticket_id = $1 AND id = $2",
            )
            .bind(ticket_id)
            .bind(comment_id)
            .fetch_optional(c)
            .await?;
            Ok(found)
        })
    }
}
