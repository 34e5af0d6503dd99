//! Tickets brought in from another system or a file, by where they came from.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{on_tx, Result, Ts, Tx};

impl Tx {
    /// The ticket imported earlier from `remote_id` of `source`, if any.
    pub async fn imported_ticket(&mut self, source: &str, remote_id: &str) -> Result<Option<i64>> {
        on_tx!(self, c, _b => {
            let row = sqlx::query(
                "SELECT ticket_id FROM ticket_imports WHERE source = $1 AND remote_id = $2",
            )
            .bind(source)
            .bind(remote_id)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                Some(row) => Ok(Some(row.try_get("ticket_id")?)),
                None => Ok(None),
            }
        })
    }

    /// Records that `ticket_id` was imported from `remote_id` of `source`.
    pub async fn record_import(
        &mut self,
        source: &str,
        remote_id: &str,
        ticket_id: i64,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO ticket_imports (source, remote_id, ticket_id, imported_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(source)
            .bind(remote_id)
            .bind(ticket_id)
            .bind(Ts(at))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }
}
