use chrono::{DateTime, Utc};
use opsdesk_domain::{Role, Team, User};
use sqlx::Row;

use crate::{on_read, on_tx, Db, Result, StoreError, Ts, Tx};

/// A person about to be stored.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: Option<String>,
    pub at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "u.id, u.email, u.display_name, u.role, u.active, \
    u.password_hash IS NOT NULL AS has_password, u.totp_secret IS NOT NULL AS totp, u.totp_required, u.created_at, u.updated_at, \
    (SELECT string_agg(m.name, ',') FROM (SELECT t.name FROM team_members tm \
      JOIN teams t ON t.id = tm.team_id WHERE tm.user_id = u.id ORDER BY t.name) m) AS team_names";

const SQLITE_USER_COLUMNS: &str = "u.id, u.email, u.display_name, u.role, u.active, \
    u.password_hash IS NOT NULL AS has_password, u.totp_secret IS NOT NULL AS totp, u.totp_required, u.created_at, u.updated_at, \
    (SELECT group_concat(name, ',') FROM (SELECT t.name FROM team_members tm \
      JOIN teams t ON t.id = tm.team_id WHERE tm.user_id = u.id ORDER BY t.name)) AS team_names";

fn user_columns(backend: crate::Backend) -> &'static str {
    match backend {
        crate::Backend::Sqlite => SQLITE_USER_COLUMNS,
        crate::Backend::Postgres => USER_COLUMNS,
    }
}

macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        let role: String = row.try_get("role")?;
        let teams: Option<String> = row.try_get("team_names")?;
        User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            display_name: row.try_get("display_name")?,
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?,
            active: row.try_get("active")?,
            teams: teams
                .map(|t| t.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            has_password: row.try_get("has_password")?,
            totp: row.try_get("totp")?,
            totp_required: row.try_get("totp_required")?,
            created_at: row.try_get::<Ts, _>("created_at")?.0,
            updated_at: row.try_get::<Ts, _>("updated_at")?.0,
        }
    }};
}

impl Tx {
    /// Stores a person; the email must already be in lower case.
    pub async fn insert_user(&mut self, u: &UserRecord) -> Result<i64> {
        self.note_write();
        on_tx!(self, c, _b => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (email, display_name, role, active, password_hash, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
            )
            .bind(&u.email)
            .bind(&u.display_name)
            .bind(u.role.as_str())
            .bind(true)
            .bind(&u.password_hash)
            .bind(Ts(u.at))
            .fetch_one(&mut *c)
            .await?;
            Ok(id)
        })
    }

    pub async fn user_by_email(&mut self, email: &str) -> Result<Option<User>> {
        on_tx!(self, c, backend => {
            let sql = format!("SELECT {} FROM users u WHERE u.email = $1", user_columns(backend));
            match sqlx::query(&sql).bind(email).fetch_optional(&mut *c).await? {
                Some(row) => Ok(Some(user_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// The person bound to an identity-provider account (`ISSUER SUBJECT`).
    pub async fn user_by_sso_identity(&mut self, identity: &str) -> Result<Option<User>> {
        on_tx!(self, c, backend => {
            let sql = format!("SELECT {} FROM users u WHERE u.sso_identity = $1", user_columns(backend));
            match sqlx::query(&sql).bind(identity).fetch_optional(&mut *c).await? {
                Some(row) => Ok(Some(user_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    pub async fn set_user_role(&mut self, id: i64, role: Role, at: DateTime<Utc>) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
                .bind(role.as_str())
                .bind(Ts(at))
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// How many people are active admins (API tokens are not people).
    pub async fn active_admins(&mut self) -> Result<i64> {
        Ok(on_tx!(self, c, _b => {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM users WHERE role = $1 AND active = $2",
            )
            .bind(opsdesk_domain::Role::Admin.as_str())
            .bind(true)
            .fetch_one(&mut *c)
            .await?
        }))
    }

    pub async fn set_user_active(
        &mut self,
        id: i64,
        active: bool,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE users SET active = $1, updated_at = $2 WHERE id = $3")
                .bind(active)
                .bind(Ts(at))
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    pub async fn insert_team(
        &mut self,
        name: &str,
        lead: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        self.note_write();
        on_tx!(self, c, _b => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO teams (name, lead_user_id, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(name)
            .bind(lead)
            .bind(Ts(at))
            .fetch_one(&mut *c)
            .await?;
            Ok(id)
        })
    }

    /// The team's id and its lead's user id.
    pub async fn team_by_name(&mut self, name: &str) -> Result<Option<(i64, Option<i64>)>> {
        on_tx!(self, c, _b => {
            let row = sqlx::query("SELECT id, lead_user_id FROM teams WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *c)
                .await?;
            match row {
                Some(r) => Ok(Some((r.try_get("id")?, r.try_get("lead_user_id")?))),
                None => Ok(None),
            }
        })
    }

    /// Adds a member; false when they already were one.
    pub async fn add_team_member(&mut self, team_id: i64, user_id: i64) -> Result<bool> {
        self.note_write();
        on_tx!(self, c, _b => {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM team_members WHERE team_id = $1 AND user_id = $2",
            )
            .bind(team_id)
            .bind(user_id)
            .fetch_one(&mut *c)
            .await?;
            if n > 0 {
                return Ok(false);
            }
            sqlx::query("INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)")
                .bind(team_id)
                .bind(user_id)
                .execute(&mut *c)
                .await?;
            Ok(true)
        })
    }

    /// Removes a member; false when they were not one.
    pub async fn remove_team_member(&mut self, team_id: i64, user_id: i64) -> Result<bool> {
        self.note_write();
        on_tx!(self, c, _b => {
            let done = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
                .bind(team_id)
                .bind(user_id)
                .execute(&mut *c)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}

impl Db {
    /// Whether anyone has an account.
    pub async fn has_users(&self) -> Result<bool> {
        on_read!(self, p, _b => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM users LIMIT 1) u")
                .fetch_one(p)
                .await?;
            Ok(n > 0)
        })
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        on_read!(self, p, backend => {
            let sql = format!("SELECT {} FROM users u ORDER BY u.email", user_columns(backend));
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            rows.iter().map(|row| Ok(user_from_row!(row))).collect()
        })
    }

    pub async fn user(&self, email: &str) -> Result<Option<User>> {
        on_read!(self, p, backend => {
            let sql = format!("SELECT {} FROM users u WHERE u.email = $1", user_columns(backend));
            match sqlx::query(&sql).bind(email).fetch_optional(p).await? {
                Some(row) => Ok(Some(user_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    pub async fn teams(&self) -> Result<Vec<Team>> {
        on_read!(self, p, backend => {
            let agg = match backend {
                crate::Backend::Sqlite => "group_concat(email, ',')",
                crate::Backend::Postgres => "string_agg(email, ',')",
            };
            let sql = format!(
                "SELECT t.id, t.name, t.created_at, l.email AS lead, \
                 (SELECT {agg} FROM (SELECT u.email FROM team_members tm JOIN users u ON u.id = tm.user_id \
                   WHERE tm.team_id = t.id ORDER BY u.email) m) AS members \
                 FROM teams t LEFT JOIN users l ON l.id = t.lead_user_id ORDER BY t.name"
            );
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let members: Option<String> = row.try_get("members")?;
                out.push(Team {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    lead: row.try_get("lead")?,
                    members: members
                        .map(|m| m.split(',').map(str::to_owned).collect())
                        .unwrap_or_default(),
                    created_at: row.try_get::<Ts, _>("created_at")?.0,
                });
            }
            Ok(out)
        })
    }
}

/// A person's two-factor state, for sign-in.
#[derive(Debug, Clone)]
pub struct TotpState {
    pub secret: Option<String>,
    pub pending: Option<String>,
    pub last_step: Option<i64>,
    pub required: bool,
}

impl Tx {
    /// A person's two-factor state, locked until the transaction ends (so a code cannot be
    /// used by two sign-ins at once).
    pub async fn totp_state(&mut self, user_id: i64) -> Result<TotpState> {
        on_tx!(self, c, backend => {
            let sql = format!(
                "SELECT totp_secret, totp_pending, totp_last_step, totp_required FROM users WHERE id = $1{}",
                backend.for_update()
            );
            let r = sqlx::query(&sql)
                .bind(user_id)
                .fetch_one(&mut *c)
                .await?;
            Ok(TotpState {
                secret: r.try_get("totp_secret")?,
                pending: r.try_get("totp_pending")?,
                last_step: r.try_get("totp_last_step")?,
                required: r.try_get("totp_required")?,
            })
        })
    }

    /// Sets the two-factor columns that are `Some`; `Some(None)` clears one.
    pub async fn set_totp(
        &mut self,
        user_id: i64,
        secret: Option<Option<&str>>,
        pending: Option<Option<&str>>,
        last_step: Option<i64>,
        required: Option<bool>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            if let Some(v) = secret {
                sqlx::query("UPDATE users SET totp_secret = $1 WHERE id = $2").bind(v).bind(user_id).execute(&mut *c).await?;
            }
            if let Some(v) = pending {
                sqlx::query("UPDATE users SET totp_pending = $1 WHERE id = $2").bind(v).bind(user_id).execute(&mut *c).await?;
            }
            if let Some(v) = last_step {
                sqlx::query("UPDATE users SET totp_last_step = $1 WHERE id = $2").bind(v).bind(user_id).execute(&mut *c).await?;
            }
            if let Some(v) = required {
                sqlx::query("UPDATE users SET totp_required = $1 WHERE id = $2").bind(v).bind(user_id).execute(&mut *c).await?;
            }
            Ok(())
        })
    }
}
