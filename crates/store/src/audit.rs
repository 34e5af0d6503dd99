use futures::stream::BoxStream;
use futures::StreamExt;
use opsdesk_domain::audit::{format_time, AuditEntry, AuditRecord, Changes, StoredEntry};
use sqlx::Row;

use crate::{on_read, on_tx, Db, Result, StoreError, Ts, Tx};

/// The last entry of the chain as recorded beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

const COLUMNS: &str = "seq, at, actor, action, ticket_id, changes, prev_hash, hash";

/// An entry's columns in `COLUMNS` order, as `audit_of` folds them on SQLite.
#[derive(serde::Deserialize)]
struct AuditParts {
    seq: i64,
    at: chrono::DateTime<chrono::Utc>,
    actor: String,
    action: String,
    ticket_id: Option<i64>,
    /// Kept as the stored text and parsed like a row's, so the chain's hashes check the same.
    changes: String,
    prev_hash: String,
    hash: String,
}

impl AuditParts {
    fn into_record(self) -> Result<AuditRecord> {
        Ok(AuditRecord {
            seq: self.seq,
            at: self.at,
            actor: self.actor,
            action: self.action,
            ticket_id: self.ticket_id,
            changes: serde_json::from_str(&self.changes)
                .map_err(|e| StoreError::Corrupt(format!("audit changes: {e}")))?,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

macro_rules! audit_from_row {
    ($row:expr) => {{
        let row = $row;
        let changes: String = row.try_get("changes")?;
        let changes: Changes = serde_json::from_str(&changes)
            .map_err(|e| StoreError::Corrupt(format!("audit changes: {e}")))?;
        AuditRecord {
            seq: row.try_get("seq")?,
            at: row.try_get::<Ts, _>("at")?.0,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            ticket_id: row.try_get("ticket_id")?,
            changes,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        }
    }};
}

impl Tx {
    /// Appends an entry to the chain, inside this transaction.
    pub async fn append_audit(&mut self, entry: AuditEntry) -> Result<AuditRecord> {
        if let Tx::Sqlite(_, deferred) = self {
            // SQLite has one writer: the head can be read once and carried in memory.
            if deferred.head.is_none() {
                let head = self.read_head().await?;
                if let Tx::Sqlite(_, d) = self {
                    d.head = Some(head);
                }
            }
            if let Tx::Sqlite(_, d) = self {
                let (seq, prev) = d.head.clone().unwrap_or_default();
                let record = entry.seal(seq + 1, &prev);
                d.head = Some((record.seq, record.hash.clone()));
                d.audit.push(record.clone());
                return Ok(record);
            }
        }
        let (seq, prev) = self.read_head().await?;
        let record = entry.seal(seq + 1, &prev);
        let changes = record.changes_text();
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor, action, ticket_id, changes, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(record.seq)
            .bind(Ts(record.at))
            .bind(&record.actor)
            .bind(&record.action)
            .bind(record.ticket_id)
            .bind(changes)
            .bind(&record.prev_hash)
            .bind(&record.hash)
            .execute(&mut *c)
            .await?;
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(record.seq)
                .bind(&record.hash)
                .execute(&mut *c)
                .await?;
            Ok(record)
        })
    }

    /// The chain head, locked until the transaction ends on PostgreSQL.
    async fn read_head(&mut self) -> Result<(i64, String)> {
        on_tx!(self, c, backend => {
            let head = sqlx::query(&format!(
                "SELECT seq, hash FROM audit_head WHERE id = 1{}",
                backend.for_update()
            ))
            .fetch_one(&mut *c)
            .await?;
            Ok((head.try_get("seq")?, head.try_get("hash")?))
        })
    }
}

impl Db {
    pub async fn audit_head(&self) -> Result<AuditHead> {
        on_read!(self, p, _b => {
            let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(p)
                .await?;
            Ok(AuditHead { seq: row.try_get("seq")?, hash: row.try_get("hash")? })
        })
    }

    /// The whole trail in stored seq order, streamed.
    pub fn audit_stream(&self) -> BoxStream<'_, Result<AuditRecord>> {
        const SQL: &str = "SELECT seq, at, actor, action, ticket_id, changes, prev_hash, hash \
                           FROM audit_log ORDER BY seq";
        match self {
            Db::Sqlite(s) => sqlx::query(SQL)
                .fetch(&s.reader)
                .map(|row| -> Result<AuditRecord> { Ok(audit_from_row!(&row?)) })
                .boxed(),
            Db::Postgres(p) => sqlx::query(SQL)
                .fetch(p)
                .map(|row| -> Result<AuditRecord> { Ok(audit_from_row!(&row?)) })
                .boxed(),
        }
    }

    /// The whole trail in stored seq order, each entry's columns as stored (the time as
    /// text, the changes unparsed), streamed: what verifying the chain hashes.
    pub fn audit_stored_stream(&self) -> BoxStream<'_, Result<StoredEntry>> {
        const SQL: &str = "SELECT seq, at, actor, action, ticket_id, changes, prev_hash, hash \
                           FROM audit_log ORDER BY seq";
        macro_rules! stored {
            ($row:expr, $at:expr) => {{
                let row = $row;
                StoredEntry {
                    seq: row.try_get("seq")?,
                    at: $at(&row)?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    ticket_id: row.try_get("ticket_id")?,
                    changes: row.try_get("changes")?,
                    prev_hash: row.try_get("prev_hash")?,
                    hash: row.try_get("hash")?,
                }
            }};
        }
        match self {
            // SQLite holds the time as the text that was hashed.
            Db::Sqlite(s) => sqlx::query(SQL)
                .fetch(&s.reader)
                .map(|row| -> Result<StoredEntry> {
                    Ok(stored!(row?, |r: &sqlx::sqlite::SqliteRow| r
                        .try_get::<String, _>("at")))
                })
                .boxed(),
            // PostgreSQL holds it as a timestamp, to the microsecond the text shows.
            Db::Postgres(p) => sqlx::query(SQL)
                .fetch(p)
                .map(|row| -> Result<StoredEntry> {
                    Ok(stored!(row?, |r: &sqlx::postgres::PgRow| r
                        .try_get::<Ts, _>("at")
                        .map(|t| format_time(t.0))))
                })
                .boxed(),
        }
    }

    /// Up to `limit` entries after seq `after`, in seq order.
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        on_read!(self, p, _b => {
            let rows = sqlx::query(&sql).bind(after).bind(limit).fetch_all(p).await?;
            rows.iter().map(|row| Ok(audit_from_row!(row))).collect()
        })
    }

    /// Every entry about any of `ticket_ids`, oldest first.
    pub async fn audit_of(&self, ticket_ids: &[i64]) -> Result<Vec<AuditRecord>> {
        self.audit_of_where(ticket_ids, "").await
    }

    /// The entries that changed the status of any of `ticket_ids`, oldest first: what the
    /// SLA clocks need (time spent pending), without the many other entries.
    pub async fn status_changes(&self, ticket_ids: &[i64]) -> Result<Vec<AuditRecord>> {
        self.audit_of_where(ticket_ids, "changes LIKE '%\"status\"%' AND ")
            .await
    }

    /// The entries about any of `ticket_ids` that `condition` (SQL ending in `AND `, or
    /// empty) keeps, oldest first.
    async fn audit_of_where(
        &self,
        ticket_ids: &[i64],
        condition: &str,
    ) -> Result<Vec<AuditRecord>> {
        if ticket_ids.is_empty() {
            return Ok(Vec::new());
        }
        on_read!(self, p, backend => {
            let mut qb = sqlx::QueryBuilder::new(match backend {
                crate::Backend::Sqlite => format!(
                    "SELECT json_group_array(json_array({COLUMNS}) ORDER BY seq) FROM audit_log \
                     WHERE {condition}ticket_id IN ("
                ),
                crate::Backend::Postgres => {
                    format!("SELECT {COLUMNS} FROM audit_log WHERE {condition}ticket_id IN (")
                }
            });
            let mut list = qb.separated(", ");
            for id in ticket_ids {
                list.push_bind(*id);
            }
            match backend {
                // A folded read: see docs/storage.md, "Folded reads (SQLite)".
                crate::Backend::Sqlite => {
                    qb.push(")");
                    let all: String = qb.build_query_scalar().persistent(false).fetch_one(p).await?;
                    crate::rows::decode::<AuditParts>("audit entries", &all)?
                        .into_iter()
                        .map(AuditParts::into_record)
                        .collect()
                }
                crate::Backend::Postgres => {
                    qb.push(") ORDER BY seq");
                    let rows = qb.build().persistent(false).fetch_all(p).await?;
                    rows.iter().map(|row| Ok(audit_from_row!(row))).collect()
                }
            }
        })
    }

    /// The entries about one ticket, oldest first.
    pub async fn audit_for_ticket(&self, ticket_id: i64) -> Result<Vec<AuditRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE ticket_id = $1 ORDER BY seq");
        on_read!(self, p, _b => {
            let rows = sqlx::query(&sql).bind(ticket_id).fetch_all(p).await?;
            rows.iter().map(|row| Ok(audit_from_row!(row))).collect()
        })
    }
}
