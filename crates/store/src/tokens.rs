use chrono::{DateTime, Utc};
use opsdesk_domain::{Role, TokenSummary};
use sqlx::Row;

use crate::{on_read, on_tx, Db, Result, StoreError, Ts, Tx};

/// A token about to be stored.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub name: String,
    pub role: Role,
    /// SHA-256 of the secret, hex.
    pub token_hash: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

macro_rules! token_from_row {
    ($row:expr) => {{
        let row = $row;
        let role: String = row.try_get("role")?;
        TokenSummary {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown token role {role:?}")))?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
            revoked_at: row.try_get::<Option<Ts>, _>("revoked_at")?.map(|t| t.0),
        }
    }};
}

impl Tx {
    pub async fn insert_token(&mut self, t: &TokenRecord) -> Result<TokenSummary> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(
                "INSERT INTO api_tokens (name, role, token_hash, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id, name, role, created_by, created_at, revoked_at",
            )
            .bind(&t.name)
            .bind(t.role.as_str())
            .bind(&t.token_hash)
            .bind(&t.created_by)
            .bind(Ts(t.created_at))
            .fetch_one(&mut *c)
            .await?;
            Ok(token_from_row!(&row))
        })
    }

    /// Marks the active token with this name as revoked; None when there is none.
    pub async fn revoke_token(
        &mut self,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<TokenSummary>> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL \
                 RETURNING id, name, role, created_by, created_at, revoked_at",
            )
            .bind(Ts(at))
            .bind(name)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                Some(row) => Ok(Some(token_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// Whether a token (active or revoked) has this name.
    pub async fn token_name_taken(&mut self, name: &str) -> Result<bool> {
        on_tx!(self, c, _b => {
            Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM api_tokens WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *c)
                .await? > 0)
        })
    }

    pub async fn count_tokens(&mut self) -> Result<i64> {
        on_tx!(self, c, _b => {
            Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM api_tokens")
                .fetch_one(&mut *c)
                .await?)
        })
    }
}

impl Db {
    /// The active token whose secret hashes to `token_hash`.
    pub async fn find_token(&self, token_hash: &str) -> Result<Option<TokenSummary>> {
        on_read!(self, p, _b => {
            let row = sqlx::query(
                "SELECT id, name, role, created_by, created_at, revoked_at FROM api_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(p)
            .await?;
            match row {
                Some(row) => Ok(Some(token_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// Whether `token_hash` is a token's that has been revoked. Asked only of a secret that
    /// is not active, so an active token's lookup costs nothing more.
    pub async fn token_revoked(&self, token_hash: &str) -> Result<bool> {
        on_read!(self, p, _b => {
            let revoked: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NOT NULL",
            )
            .bind(token_hash)
            .fetch_one(p)
            .await?;
            Ok(revoked > 0)
        })
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenSummary>> {
        on_read!(self, p, _b => {
            let rows = sqlx::query(
                "SELECT id, name, role, created_by, created_at, revoked_at FROM api_tokens ORDER BY id",
            )
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| Ok(token_from_row!(row))).collect()
        })
    }
}
