//! Signals, their receipts and correlations, workloads, maintenance windows and poller cursors.

use chrono::{DateTime, Utc};

use crate::{on_read, on_tx, Db, Result, Ts, Tx};

impl Db {
    pub async fn poller_cursor(&self, name: &str) -> Result<Option<String>> {
        on_read!(self, p, _b => {
            Ok(sqlx::query_scalar::<_, String>("SELECT cursor FROM poller_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(p)
                .await?)
        })
    }
}

impl Tx {
    pub async fn set_poller_cursor(
        &mut self,
        name: &str,
        cursor: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO poller_cursors (name, cursor, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(cursor)
            .bind(Ts(at))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }
}
