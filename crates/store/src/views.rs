//! Saved views of the ticket queue, kept per person.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{on_read, on_tx, Db, Result, Ts, Tx};

/// A named filter and sort of the queue, as its owner saved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedView {
    pub id: i64,
    pub owner: String,
    pub name: String,
    /// The queue's query string (`status=new&severity=SEV1`).
    pub query: String,
    pub created_at: DateTime<Utc>,
}

impl Db {
    /// The views `owner` saved, by name.
    pub async fn saved_views(&self, owner: &str) -> Result<Vec<SavedView>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT id, owner, name, query, created_at FROM saved_views \
                 WHERE owner = $1 ORDER BY name",
            )
            .bind(owner)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(SavedView {
                        id: row.try_get("id")?,
                        owner: row.try_get("owner")?,
                        name: row.try_get("name")?,
                        query: row.try_get("query")?,
                        created_at: row.try_get::<Ts, _>("created_at")?.0,
                    })
                })
                .collect()
        })
    }
}

impl Tx {
    /// Saves a view, replacing the owner's view of the same name.
    pub async fn save_view(
        &mut self,
        owner: &str,
        name: &str,
        query: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO saved_views (owner, name, query, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (owner, name) DO UPDATE SET query = excluded.query",
            )
            .bind(owner)
            .bind(name)
            .bind(query)
            .bind(Ts(now))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// How many views `owner` has besides the one named `except`.
    pub async fn count_views(&mut self, owner: &str, except: &str) -> Result<i64> {
        on_tx!(self, c, _b => {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM saved_views WHERE owner = $1 AND name <> $2",
            )
            .bind(owner)
            .bind(except)
            .fetch_one(&mut *c)
            .await?)
        })
    }

    /// Deletes one of `owner`'s views; false when they have none with that id.
    pub async fn delete_view(&mut self, owner: &str, id: i64) -> Result<bool> {
        self.note_write();
        on_tx!(self, c, _b => {
            let gone = sqlx::query("DELETE FROM saved_views WHERE owner = $1 AND id = $2")
                .bind(owner)
                .bind(id)
                .execute(&mut *c)
                .await?
                .rows_affected();
            Ok(gone > 0)
        })
    }
}
