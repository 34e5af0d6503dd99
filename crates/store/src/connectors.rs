//! Links between opsdesk tickets and tickets in other ticketing systems, and how far each
//! connector has looked.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use crate::db::Backend;
use crate::{on_read, on_tx, Db, Result, Ts, Tx};

/// One opsdesk ticket tied to one ticket of a connector's system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExternalLink {
    pub id: i64,
    /// The connector's name in the configuration.
    pub connector: String,
    pub ticket_id: i64,
    /// The ticket's id over there; none while opsdesk is creating it.
    pub remote_id: Option<String>,
    /// Where people open the remote ticket.
    pub remote_url: Option<String>,
    /// `creating` (opsdesk is making the remote ticket) or `linked`.
    pub state: String,
    /// The title, status and severity both sides held at the last sync: a side that no longer
    /// holds them was changed there, and is not overwritten without a person's say.
    #[serde(skip)]
    pub synced_title: String,
    #[serde(skip)]
    pub synced_status: String,
    #[serde(skip)]
    pub synced_severity: String,
    /// The newest opsdesk comment sent over.
    pub sent_comment_id: i64,
    /// The newest remote change taken (RT: transaction id).
    pub remote_cursor: i64,
    /// Failed syncs in a row; the last failure's or conflict's words are in `detail`.
    pub attempts: i64,
    pub detail: String,
    pub next_sync_at: DateTime<Utc>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, connector, ticket_id, remote_id, remote_url, state, synced_title, \
                       synced_status, synced_severity, sent_comment_id, remote_cursor, attempts, \
                       detail, next_sync_at, last_synced_at, created_by, created_at, updated_at";

macro_rules! link_from {
    ($row:expr) => {{
        let row = $row;
        ExternalLink {
            id: row.try_get("id")?,
            connector: row.try_get("connector")?,
            ticket_id: row.try_get("ticket_id")?,
            remote_id: row.try_get("remote_id")?,
            remote_url: row.try_get("remote_url")?,
            state: row.try_get("state")?,
            synced_title: row.try_get("synced_title")?,
            synced_status: row.try_get("synced_status")?,
            synced_severity: row.try_get("synced_severity")?,
            sent_comment_id: row.try_get("sent_comment_id")?,
            remote_cursor: row.try_get("remote_cursor")?,
            attempts: row.try_get("attempts")?,
            detail: row.try_get("detail")?,
            next_sync_at: row.try_get::<Ts, _>("next_sync_at")?.0,
            last_synced_at: row.try_get::<Option<Ts>, _>("last_synced_at")?.map(|t| t.0),
            created_by: row.try_get("created_by")?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
            updated_at: row.try_get::<Ts, _>("updated_at")?.0,
        }
    }};
}

/// A link to make: the remote ticket is created by the connector's next pass (or found, if
/// an earlier pass made it and stopped before recording it).
#[derive(Debug, Clone)]
pub struct NewExternalLink<'a> {
    pub connector: &'a str,
    pub ticket_id: i64,
    /// Set when the remote ticket exists already (it was imported from there).
    pub remote: Option<(&'a str, &'a str)>,
    pub synced_title: &'a str,
    pub synced_status: &'a str,
    pub synced_severity: &'a str,
    pub remote_cursor: i64,
    /// opsdesk comments up to this one count as sent.
    pub sent_comment_id: i64,
    pub created_by: &'a str,
    pub at: DateTime<Utc>,
}

/// How far a connector has looked, on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorCursor {
    pub last_ticket_id: i64,
    /// The newest remote change looked at; none before the first look.
    pub remote_cursor: Option<i64>,
    /// The newest remote change at the first look.
    pub first_cursor: Option<i64>,
}

impl Tx {
    /// Records a link unless the ticket has one with this connector already; returns the
    /// ticket's link either way, and whether it is new.
    pub async fn insert_external_link(
        &mut self,
        l: &NewExternalLink<'_>,
    ) -> Result<(ExternalLink, bool)> {
        self.note_write();
        let (remote_id, remote_url) = l.remote.unzip();
        let state = if remote_id.is_some() {
            "linked"
        } else {
            "creating"
        };
        let sql = format!(
            "INSERT INTO external_links (connector, ticket_id, remote_id, remote_url, state, \
             synced_title, synced_status, synced_severity, sent_comment_id, remote_cursor, \
             next_sync_at, last_synced_at, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $11, $11) \
             ON CONFLICT (connector, ticket_id) DO NOTHING RETURNING {COLUMNS}"
        );
        let inserted = on_tx!(self, c, _b => {
            let row = sqlx::query(&sql)
                .bind(l.connector)
                .bind(l.ticket_id)
                .bind(remote_id)
                .bind(remote_url)
                .bind(state)
                .bind(l.synced_title)
                .bind(l.synced_status)
                .bind(l.synced_severity)
                .bind(l.sent_comment_id)
                .bind(l.remote_cursor)
                .bind(Ts(l.at))
                .bind(remote_id.map(|_| Ts(l.at)))
                .bind(l.created_by)
                .fetch_optional(&mut *c)
                .await?;
            match row {
                Some(row) => Some(link_from!(&row)),
                None => None,
            }
        });
        match inserted {
            Some(link) => Ok((link, true)),
            None => {
                let link = self
                    .external_link(l.connector, l.ticket_id)
                    .await?
                    .ok_or_else(|| {
                        crate::StoreError::Corrupt(format!(
                            "the link of ticket {} with {} vanished",
                            l.ticket_id, l.connector
                        ))
                    })?;
                Ok((link, false))
            }
        }
    }

    /// The ticket's link with this connector, locked for a change on PostgreSQL.
    pub async fn external_link(
        &mut self,
        connector: &str,
        ticket_id: i64,
    ) -> Result<Option<ExternalLink>> {
        on_tx!(self, c, b => {
            let sql = format!(
                "SELECT {COLUMNS} FROM external_links WHERE connector = $1 AND ticket_id = $2{}",
                b.for_update()
            );
            let row = sqlx::query(&sql)
                .bind(connector)
                .bind(ticket_id)
                .fetch_optional(&mut *c)
                .await?;
            match row {
                Some(row) => Ok(Some(link_from!(&row))),
                None => Ok(None),
            }
        })
    }

    /// Writes back a link's sync state; a lease on it stays (see
    /// [`Tx::release_external_link`]).
    pub async fn save_external_link(&mut self, l: &ExternalLink) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "UPDATE external_links SET remote_id = $2, remote_url = $3, state = $4, \
                 synced_title = $5, synced_status = $6, synced_severity = $7, \
                 sent_comment_id = $8, remote_cursor = $9, attempts = $10, detail = $11, \
                 next_sync_at = $12, last_synced_at = $13, updated_at = $14 \
                 WHERE id = $1",
            )
            .bind(l.id)
            .bind(&l.remote_id)
            .bind(&l.remote_url)
            .bind(&l.state)
            .bind(&l.synced_title)
            .bind(&l.synced_status)
            .bind(&l.synced_severity)
            .bind(l.sent_comment_id)
            .bind(l.remote_cursor)
            .bind(l.attempts)
            .bind(&l.detail)
            .bind(Ts(l.next_sync_at))
            .bind(l.last_synced_at.map(Ts))
            .bind(Ts(l.updated_at))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Takes up to `limit` of the connector's links that are due (their time has come, or
    /// their ticket changed since they were last synced and they are not failing), leased
    /// until `lease_until` so that no other node syncs them meanwhile.
    pub async fn claim_external_links(
        &mut self,
        connector: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ExternalLink>> {
        let links = on_tx!(self, c, b => {
            let sql = format!(
                "SELECT l.id FROM external_links l JOIN tickets t ON t.id = l.ticket_id \
                 WHERE l.connector = $1 AND (l.lease_until IS NULL OR l.lease_until <= $2) \
                 AND (l.next_sync_at <= $2 OR (l.attempts = 0 AND (l.last_synced_at IS NULL \
                 OR t.updated_at > l.last_synced_at))) \
                 ORDER BY l.next_sync_at, l.id LIMIT $3{}",
                match b {
                    Backend::Sqlite => "",
                    Backend::Postgres => " FOR UPDATE OF l SKIP LOCKED",
                }
            );
            let ids: Vec<i64> = sqlx::query_scalar(&sql)
                .bind(connector)
                .bind(Ts(now))
                .bind(limit)
                .fetch_all(&mut *c)
                .await?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let sql = format!(
                    "UPDATE external_links SET lease_until = $1 WHERE id = $2 RETURNING {COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(Ts(lease_until))
                    .bind(id)
                    .fetch_one(&mut *c)
                    .await?;
                out.push(link_from!(&row));
            }
            out
        });
        if !links.is_empty() {
            self.note_write();
        }
        Ok(links)
    }

    /// Holds the lease on a link a little longer (`until`), for a sync that is still at work.
    pub async fn extend_external_link_lease(
        &mut self,
        id: i64,
        until: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE external_links SET lease_until = $2 WHERE id = $1")
                .bind(id)
                .bind(Ts(until))
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Gives up the lease on a link: its sync is over.
    pub async fn release_external_link(&mut self, id: i64) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE external_links SET lease_until = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Asks for the ticket's link with the connector to be synced now, failing or not.
    pub async fn hurry_external_link(
        &mut self,
        connector: &str,
        ticket_id: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "UPDATE external_links SET next_sync_at = $3 \
                 WHERE connector = $1 AND ticket_id = $2 AND next_sync_at > $3",
            )
            .bind(connector)
            .bind(ticket_id)
            .bind(Ts(now))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Leases the ticket's link with the connector when no node holds it.
    pub async fn lease_external_link(
        &mut self,
        connector: &str,
        ticket_id: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ExternalLink>> {
        self.note_write();
        let sql = format!(
            "UPDATE external_links SET lease_until = $3 WHERE connector = $1 AND ticket_id = $2 \
             AND (lease_until IS NULL OR lease_until <= $4) RETURNING {COLUMNS}"
        );
        on_tx!(self, c, _b => {
            let row = sqlx::query(&sql)
                .bind(connector)
                .bind(ticket_id)
                .bind(Ts(lease_until))
                .bind(Ts(now))
                .fetch_optional(&mut *c)
                .await?;
            match row {
                Some(row) => Ok(Some(link_from!(&row))),
                None => Ok(None),
            }
        })
    }

    /// Asks for the connector's links to these remote tickets to be synced now; returns the
    /// remote ids that have no link.
    pub async fn hurry_external_links(
        &mut self,
        connector: &str,
        remote_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let mut unlinked = Vec::new();
        for remote_id in remote_ids {
            self.note_write();
            let updated = on_tx!(self, c, _b => {
                sqlx::query(
                    "UPDATE external_links SET next_sync_at = $3 \
                     WHERE connector = $1 AND remote_id = $2 AND next_sync_at > $3 AND attempts = 0",
                )
                .bind(connector)
                .bind(remote_id)
                .bind(Ts(now))
                .execute(&mut *c)
                .await?
                .rows_affected()
            });
            if updated == 0
                && self
                    .external_link_by_remote(connector, remote_id)
                    .await?
                    .is_none()
            {
                unlinked.push(remote_id.clone());
            }
        }
        Ok(unlinked)
    }

    pub async fn external_link_by_remote(
        &mut self,
        connector: &str,
        remote_id: &str,
    ) -> Result<Option<ExternalLink>> {
        let sql =
            format!("SELECT {COLUMNS} FROM external_links WHERE connector = $1 AND remote_id = $2");
        on_tx!(self, c, _b => {
            let row = sqlx::query(&sql)
                .bind(connector)
                .bind(remote_id)
                .fetch_optional(&mut *c)
                .await?;
            match row {
                Some(row) => Ok(Some(link_from!(&row))),
                None => Ok(None),
            }
        })
    }

    /// How far the connector has looked; on its first pass, from now on (the newest ticket
    /// there is, and no remote change yet).
    pub async fn connector_cursor(
        &mut self,
        connector: &str,
        now: DateTime<Utc>,
    ) -> Result<ConnectorCursor> {
        self.note_write();
        on_tx!(self, c, b => {
            sqlx::query(
                "INSERT INTO connector_cursors (connector, last_ticket_id, remote_cursor, updated_at) \
                 VALUES ($1, (SELECT COALESCE(MAX(id), 0) FROM tickets), NULL, $2) \
                 ON CONFLICT (connector) DO NOTHING",
            )
            .bind(connector)
            .bind(Ts(now))
            .execute(&mut *c)
            .await?;
            let sql = format!(
                "SELECT last_ticket_id, remote_cursor, first_cursor FROM connector_cursors \
                 WHERE connector = $1{}",
                b.for_update()
            );
            let row = sqlx::query(&sql).bind(connector).fetch_one(&mut *c).await?;
            Ok(ConnectorCursor {
                last_ticket_id: row.try_get("last_ticket_id")?,
                remote_cursor: row.try_get("remote_cursor")?,
                first_cursor: row.try_get("first_cursor")?,
            })
        })
    }

    pub async fn save_connector_cursor(
        &mut self,
        connector: &str,
        cursor: &ConnectorCursor,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "UPDATE connector_cursors SET last_ticket_id = $2, remote_cursor = $3, \
                 first_cursor = $5, updated_at = $4 WHERE connector = $1",
            )
            .bind(connector)
            .bind(cursor.last_ticket_id)
            .bind(cursor.remote_cursor)
            .bind(Ts(now))
            .bind(cursor.first_cursor)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Of the (at most `limit`) tickets after `after_id`, those of these severities, oldest
    /// first, and the newest ticket looked at.
    pub async fn tickets_of_severities_after(
        &mut self,
        after_id: i64,
        severities: &[&str],
        limit: i64,
    ) -> Result<(Vec<i64>, i64)> {
        on_tx!(self, c, _b => {
            let rows = sqlx::query(
                "SELECT id, severity, source FROM tickets WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after_id)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
            let mut last = after_id;
            let mut out = Vec::new();
            for row in rows {
                let id: i64 = row.try_get("id")?;
                let severity: String = row.try_get("severity")?;
                last = id;
                let source: String = row.try_get("source")?;
                // Tickets brought in by `opsdesk import` are history, not new work to push.
                if severities.contains(&severity.as_str()) && !source.starts_with("import.") {
                    out.push(id);
                }
            }
            Ok((out, last))
        })
    }
}

impl Db {
    /// Whether a connector pass would find nothing to do: it has looked at every ticket for
    /// `create_for`, and none of its links is due at `now`. Read only, so an idle connector
    /// writes nothing.
    pub async fn connector_idle(&self, connector: &str, now: DateTime<Utc>) -> Result<bool> {
        on_read!(self, p, _b => {
            let row = sqlx::query(
                "SELECT (SELECT last_ticket_id FROM connector_cursors WHERE connector = $1) AS seen, \
                 (SELECT COALESCE(MAX(id), 0) FROM tickets) AS newest, \
                 EXISTS (SELECT 1 FROM external_links l JOIN tickets t ON t.id = l.ticket_id \
                   WHERE l.connector = $1 AND (l.lease_until IS NULL OR l.lease_until <= $2) \
                   AND (l.next_sync_at <= $2 OR (l.attempts = 0 AND (l.last_synced_at IS NULL \
                   OR t.updated_at > l.last_synced_at)))) AS due",
            )
            .bind(connector)
            .bind(Ts(now))
            .fetch_one(p)
            .await?;
            let seen: Option<i64> = row.try_get("seen")?;
            let newest: i64 = row.try_get("newest")?;
            let due: bool = row.try_get("due")?;
            Ok(seen.is_some_and(|s| s >= newest) && !due)
        })
    }

    /// A ticket's links with other systems, oldest first.
    pub async fn external_links(&self, ticket_id: i64) -> Result<Vec<ExternalLink>> {
        let sql = format!("SELECT {COLUMNS} FROM external_links WHERE ticket_id = $1 ORDER BY id");
        on_read!(self, p, _b => {
            let rows = sqlx::query(&sql).bind(ticket_id).fetch_all(p).await?;
            rows.iter().map(|row| Ok(link_from!(row))).collect()
        })
    }
}
