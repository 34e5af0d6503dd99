//! The outbox of notifications, their delivery attempts, and the channels and routing rules
//! kept through the API.

use chrono::{DateTime, Utc};
use opsdesk_domain::channel::ChannelSpec;
use opsdesk_domain::routing::RoutingRule;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use utoipa::ToSchema;

use crate::{on_read, on_tx, Db, Result, StoreError, Ts, Tx};

/// A notification to send through one channel, written with the change it announces.
#[derive(Debug, Clone)]
pub struct NewOutboxItem {
    /// Unique per (ticket event, channel); a second write of the same key is ignored.
    pub idempotency_key: String,
    pub ticket_id: Option<i64>,
    pub event: String,
    pub channel: String,
    pub notification: Value,
}

/// One notification for one channel, and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OutboxItem {
    pub id: i64,
    /// Sent as `Idempotency-Key`; the same on every attempt.
    pub idempotency_key: String,
    pub ticket_id: Option<i64>,
    pub event: String,
    pub channel: String,
    #[schema(value_type = Object)]
    pub notification: Value,
    /// `pending`, `delivered` or `dead` (attempts used up or a permanent refusal).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One try at delivering an outbox item.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    pub outbox_id: i64,
    pub attempt: i64,
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub retryable: bool,
    /// What the channel answered, or why it failed.
    pub detail: String,
}

/// Where an item goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    RetryAt(DateTime<Utc>),
    Dead,
}

/// Which outbox items to list.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    pub state: Option<String>,
    pub ticket_id: Option<i64>,
    pub limit: i64,
}

/// A channel or routing rule kept in the database, with who made it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Stored<T> {
    #[serde(flatten)]
    pub item: T,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const OUTBOX_COLUMNS: &str = "id, idempotency_key, ticket_id, event, channel, notification, \
    state, attempts, next_attempt_at, last_error, created_at, delivered_at";

fn parse<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("unreadable {what}: {e}")))
}

macro_rules! outbox_from_row {
    ($row:expr) => {{
        let row = $row;
        let notification: String = row.try_get("notification")?;
        OutboxItem {
            id: row.try_get("id")?,
            idempotency_key: row.try_get("idempotency_key")?,
            ticket_id: row.try_get("ticket_id")?,
            event: row.try_get("event")?,
            channel: row.try_get("channel")?,
            notification: parse("notification", &notification)?,
            state: row.try_get("state")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get::<Ts, _>("next_attempt_at")?.0,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
            delivered_at: row.try_get::<Option<Ts>, _>("delivered_at")?.map(|t| t.0),
        }
    }};
}

macro_rules! stored_from_row {
    ($row:expr, $column:literal, $what:literal) => {{
        let row = $row;
        let text: String = row.try_get($column)?;
        Stored {
            item: parse($what, &text)?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
            updated_at: row.try_get::<Ts, _>("updated_at")?.0,
        }
    }};
}

impl Db {
    /// Outbox items, newest first.
    pub async fn outbox(&self, f: &OutboxFilter) -> Result<Vec<OutboxItem>> {
        on_read!(self, p, _b => {
            let sql = format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox \
                 WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR ticket_id = $2) \
                 ORDER BY id DESC LIMIT $3"
            );
            let rows = sqlx::query(&sql)
                .bind(f.state.as_deref())
                .bind(f.ticket_id)
                .bind(f.limit.clamp(1, 1000))
                .fetch_all(p)
                .await?;
            rows.iter().map(|row| Ok(outbox_from_row!(row))).collect()
        })
    }

    /// Whether any delivery is due and unclaimed: a cheap read, so idle dispatchers do not
    /// open write transactions.
    pub async fn outbox_due(&self, now: DateTime<Utc>) -> Result<bool> {
        on_read!(self, p, _b => {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
                 AND (lease_until IS NULL OR lease_until <= $1) LIMIT 1",
            )
            .bind(Ts(now))
            .fetch_optional(p)
            .await?;
            Ok(found.is_some())
        })
    }

    pub async fn outbox_item(&self, id: i64) -> Result<Option<OutboxItem>> {
        self.outbox_where("id = $1", id).await
    }

    pub async fn outbox_item_by_key(&self, key: &str) -> Result<Option<OutboxItem>> {
        self.outbox_where("idempotency_key = $1", key.to_owned())
            .await
    }

    async fn outbox_where<T>(&self, condition: &str, value: T) -> Result<Option<OutboxItem>>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + for<'q> sqlx::Encode<'q, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>
            + Send,
    {
        on_read!(self, p, _b => {
            let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE {condition}");
            match sqlx::query(&sql).bind(value).fetch_optional(p).await? {
                Some(row) => Ok(Some(outbox_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// The attempts made for these outbox items, oldest first.
    pub async fn delivery_attempts(&self, outbox_ids: &[i64]) -> Result<Vec<DeliveryAttempt>> {
        if outbox_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(outbox_ids).unwrap_or_else(|_| "[]".into());
        on_read!(self, p, b => {
            let set = match b {
                crate::Backend::Sqlite => "SELECT value FROM json_each($1)",
                crate::Backend::Postgres => "SELECT jsonb_array_elements_text($1::jsonb)::bigint",
            };
            let sql = format!(
                "SELECT outbox_id, attempt, at, ok, retryable, detail FROM delivery_attempts \
                 WHERE outbox_id IN ({set}) ORDER BY id"
            );
            let rows = sqlx::query(&sql).bind(ids).fetch_all(p).await?;
            rows.iter()
                .map(|row| {
                    Ok(DeliveryAttempt {
                        outbox_id: row.try_get("outbox_id")?,
                        attempt: row.try_get("attempt")?,
                        at: row.try_get::<Ts, _>("at")?.0,
                        ok: row.try_get("ok")?,
                        retryable: row.try_get("retryable")?,
                        detail: row.try_get("detail")?,
                    })
                })
                .collect()
        })
    }

    pub async fn stored_channels(&self) -> Result<Vec<Stored<ChannelSpec>>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT spec, created_by, created_at, updated_at FROM channels ORDER BY name",
            )
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(stored_from_row!(row, "spec", "channel"))).collect()
        })
    }

    /// Routing rules kept through the API, in the order they are tried.
    pub async fn stored_routing_rules(&self) -> Result<Vec<Stored<RoutingRule>>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT rule, created_by, created_at, updated_at FROM routing_rules \
                 ORDER BY position, id",
            )
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(stored_from_row!(row, "rule", "routing rule"))).collect()
        })
    }
}

impl Tx {
    /// Queues notifications; an item whose key is already queued is left as it is.
    pub async fn enqueue(&mut self, items: &[NewOutboxItem], now: DateTime<Utc>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.note_write();
        on_tx!(self, c, _b => {
            for chunk in items.chunks(100) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO outbox (idempotency_key, ticket_id, event, channel, notification, \
                     state, attempts, next_attempt_at, created_at) ",
                );
                q.push_values(chunk, |mut b, i| {
                    b.push_bind(&i.idempotency_key)
                        .push_bind(i.ticket_id)
                        .push_bind(&i.event)
                        .push_bind(&i.channel)
                        .push_bind(i.notification.to_string())
                        .push_bind("pending")
                        .push_bind(0_i64)
                        .push_bind(Ts(now))
                        .push_bind(Ts(now));
                });
                q.push(" ON CONFLICT (idempotency_key) DO NOTHING");
                q.build().persistent(false).execute(&mut *c).await?;
            }
            Ok(())
        })
    }

    /// The channels any notification of ticket `ticket_id` was queued for.
    pub async fn ticket_channels(&mut self, ticket_id: i64) -> Result<Vec<String>> {
        Ok(on_tx!(self, c, _b => {
            sqlx::query_scalar("SELECT DISTINCT channel FROM outbox WHERE ticket_id = $1")
                .bind(ticket_id)
                .fetch_all(&mut *c)
                .await?
        }))
    }

    /// Takes up to `limit` pending items that are due and not leased by another dispatcher,
    /// leasing them until `lease_until` and counting the attempt about to be made. A ticket's
    /// items reach each channel in the order they were written: an item waits while an
    /// earlier one for the same ticket and channel is still pending (a receiver that keeps
    /// state, such as PagerDuty's alerts, must see `trigger` before `resolve`).
    pub async fn claim_outbox(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxItem>> {
        let items = on_tx!(self, c, b => {
            let sql = format!(
                "SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
                 AND (lease_until IS NULL OR lease_until <= $1) \
                 AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.ticket_id = outbox.ticket_id \
                 AND e.channel = outbox.channel AND e.id < outbox.id AND e.state = 'pending') \
                 ORDER BY id LIMIT $2{}",
                match b {
                    crate::Backend::Sqlite => "",
                    crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
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
                    "UPDATE outbox SET lease_until = $1, attempts = attempts + 1 WHERE id = $2 \
                     RETURNING {OUTBOX_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(Ts(lease_until))
                    .bind(id)
                    .fetch_one(&mut *c)
                    .await?;
                out.push(outbox_from_row!(&row));
            }
            out
        });
        if !items.is_empty() {
            self.note_write();
        }
        Ok(items)
    }

    /// Records an attempt and moves the item on.
    pub async fn record_attempt(
        &mut self,
        item: &OutboxItem,
        attempt: &DeliveryAttempt,
        after: AfterAttempt,
    ) -> Result<()> {
        self.note_write();
        let (state, next, delivered) = match after {
            AfterAttempt::Delivered => ("delivered", item.next_attempt_at, Some(attempt.at)),
            AfterAttempt::RetryAt(at) => ("pending", at, None),
            AfterAttempt::Dead => ("dead", item.next_attempt_at, None),
        };
        let error = (!attempt.ok).then_some(attempt.detail.as_str());
        on_tx!(self, c, _b => {
            sqlx::query(
                "UPDATE outbox SET state = $1, next_attempt_at = $2, lease_until = NULL, \
                 last_error = COALESCE($3, last_error), delivered_at = $4 WHERE id = $5",
            )
            .bind(state)
            .bind(Ts(next))
            .bind(error)
            .bind(delivered.map(Ts))
            .bind(item.id)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO delivery_attempts (outbox_id, attempt, at, ok, retryable, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(item.id)
            .bind(attempt.attempt)
            .bind(Ts(attempt.at))
            .bind(attempt.ok)
            .bind(attempt.retryable)
            .bind(&attempt.detail)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Puts a dead item back in the queue, due now; `None` if there is no such dead item.
    pub async fn retry_outbox(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxItem>> {
        let row = on_tx!(self, c, _b => {
            let sql = format!(
                "UPDATE outbox SET state = 'pending', next_attempt_at = $1, lease_until = NULL \
                 WHERE id = $2 AND state = 'dead' RETURNING {OUTBOX_COLUMNS}"
            );
            match sqlx::query(&sql).bind(Ts(now)).bind(id).fetch_optional(&mut *c).await? {
                Some(row) => Some(outbox_from_row!(&row)),
                None => None,
            }
        });
        if row.is_some() {
            self.note_write();
        }
        Ok(row)
    }

    pub async fn save_channel(
        &mut self,
        spec: &ChannelSpec,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        let text = serde_json::to_string(spec)
            .map_err(|e| StoreError::Corrupt(format!("channel {}: {e}", spec.name)))?;
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO channels (name, spec, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
            )
            .bind(&spec.name)
            .bind(text)
            .bind(actor)
            .bind(Ts(now))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Whether a channel of that name was kept.
    pub async fn delete_channel(&mut self, name: &str) -> Result<bool> {
        self.delete_named("DELETE FROM channels WHERE name = $1", name)
            .await
    }

    async fn delete_named(&mut self, sql: &'static str, name: &str) -> Result<bool> {
        let n = on_tx!(self, c, _b => {
            sqlx::query(sql).bind(name).execute(&mut *c).await?.rows_affected()
        });
        if n > 0 {
            self.note_write();
        }
        Ok(n > 0)
    }

    /// Adds or replaces a routing rule by name. A new rule goes last unless `position` is
    /// given.
    pub async fn save_routing_rule(
        &mut self,
        rule: &RoutingRule,
        position: Option<i64>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        let text = serde_json::to_string(rule)
            .map_err(|e| StoreError::Corrupt(format!("routing rule {}: {e}", rule.name)))?;
        on_tx!(self, c, _b => {
            let last: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM routing_rules")
                .fetch_one(&mut *c)
                .await?;
            let position_given = position.is_some();
            let position = position.unwrap_or(last.unwrap_or(0) + 1);
            sqlx::query(
                "INSERT INTO routing_rules (position, name, rule, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (name) DO UPDATE SET rule = excluded.rule, \
                 position = CASE WHEN $6 THEN excluded.position ELSE routing_rules.position END, \
                 updated_at = excluded.updated_at",
            )
            .bind(position)
            .bind(&rule.name)
            .bind(text)
            .bind(actor)
            .bind(Ts(now))
            .bind(position_given)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    pub async fn delete_routing_rule(&mut self, name: &str) -> Result<bool> {
        self.delete_named("DELETE FROM routing_rules WHERE name = $1", name)
            .await
    }
}
