use chrono::{DateTime, Utc};
use sqlx::Row;

use opsdesk_domain::Role;

use crate::{on_read, on_tx, Db, Result, StoreError, Ts, Tx};

/// A stored session, found by the hash of its cookie value.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user_id: i64,
    pub email: String,
    pub role: Role,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a password sign-in needs to know of a person.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub user_id: i64,
    pub password_hash: Option<String>,
    pub active: bool,
    pub role: Role,
}

impl Tx {
    pub async fn insert_session(
        &mut self,
        id_hash: &str,
        user_id: i64,
        csrf_token: &str,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $4, $5)",
            )
            .bind(id_hash)
            .bind(user_id)
            .bind(csrf_token)
            .bind(Ts(at))
            .bind(Ts(expires_at))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Ends a session; true when there was one.
    pub async fn delete_session(&mut self, id_hash: &str) -> Result<bool> {
        self.note_write();
        on_tx!(self, c, _b => {
            let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(&mut *c)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Ends every session of a person (when they are disabled).
    pub async fn delete_user_sessions(&mut self, user_id: i64) -> Result<u64> {
        self.note_write();
        on_tx!(self, c, _b => {
            let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *c)
                .await?;
            Ok(done.rows_affected())
        })
    }

    pub async fn touch_session(&mut self, id_hash: &str, at: DateTime<Utc>) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(Ts(at))
                .bind(id_hash)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Records a sign-in attempt as failed until it succeeds; returns its id.
    pub async fn insert_login_failure(
        &mut self,
        email: &str,
        client: &str,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        self.note_write();
        on_tx!(self, c, _b => {
            Ok(sqlx::query_scalar::<_, i64>(
                "INSERT INTO login_failures (email, client, at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(email)
            .bind(client)
            .bind(Ts(at))
            .fetch_one(&mut *c)
            .await?)
        })
    }

    /// Takes back an attempt that succeeded.
    pub async fn delete_login_failure(&mut self, id: i64) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("DELETE FROM login_failures WHERE id = $1")
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Failed (and running) sign-ins since `since`, for an email and for a client address.
    /// On PostgreSQL, attempts for one email wait for each other here, so parallel guesses
    /// cannot all pass the count.
    pub async fn count_login_failures(
        &mut self,
        email: &str,
        client: &str,
        since: DateTime<Utc>,
    ) -> Result<(i64, i64)> {
        on_tx!(self, c, backend => {
            match backend {
                // One writer at a time: nothing to wait for.
                crate::Backend::Sqlite => {}
                crate::Backend::Postgres => {
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7261))")
                        .bind(email)
                        .execute(&mut *c)
                        .await?;
                }
            }
            let by_email: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE email = $1 AND at > $2")
                .bind(email)
                .bind(Ts(since))
                .fetch_one(&mut *c)
                .await?;
            let by_client: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE client = $1 AND at > $2")
                .bind(client)
                .bind(Ts(since))
                .fetch_one(&mut *c)
                .await?;
            Ok((by_email, by_client))
        })
    }
}

impl Db {
    /// The stored password hash, state and role of a person, by email.
    pub async fn login_record(&self, email: &str) -> Result<Option<LoginRecord>> {
        on_read!(self, p, _b => {
            let row = sqlx::query("SELECT id, password_hash, active, role FROM users WHERE email = $1")
                .bind(email)
                .fetch_optional(p)
                .await?;
            match row {
                Some(r) => {
                    let role: String = r.try_get("role")?;
                    Ok(Some(LoginRecord {
                        user_id: r.try_get("id")?,
                        password_hash: r.try_get("password_hash")?,
                        active: r.try_get("active")?,
                        role: Role::parse(&role)
                            .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?,
                    }))
                }
                None => Ok(None),
            }
        })
    }

    /// The session and its person, if the person is still active.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        on_read!(self, p, _b => {
            let row = sqlx::query(
                "SELECT s.user_id, u.email, u.role, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at \
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND u.active = $2",
            )
            .bind(id_hash)
            .bind(true)
            .fetch_optional(p)
            .await?;
            match row {
                Some(r) => Ok(Some(SessionRecord {
                    user_id: r.try_get("user_id")?,
                    email: r.try_get("email")?,
                    role: {
                        let role: String = r.try_get("role")?;
                        Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?
                    },
                    csrf_token: r.try_get("csrf_token")?,
                    created_at: r.try_get::<Ts, _>("created_at")?.0,
                    last_seen_at: r.try_get::<Ts, _>("last_seen_at")?.0,
                    expires_at: r.try_get::<Ts, _>("expires_at")?.0,
                })),
                None => Ok(None),
            }
        })
    }
}

impl Tx {
    /// Remembers a single sign-on in progress.
    pub async fn insert_sso_login(
        &mut self,
        state: &str,
        nonce: &str,
        verifier: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("INSERT INTO sso_logins (state, nonce, verifier, created_at) VALUES ($1, $2, $3, $4)")
                .bind(state)
                .bind(nonce)
                .bind(verifier)
                .bind(Ts(at))
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Forgets the sign-ons started before `before` and counts those left.
    pub async fn count_sso_logins(&mut self, before: DateTime<Utc>) -> Result<i64> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("DELETE FROM sso_logins WHERE created_at <= $1")
                .bind(Ts(before))
                .execute(&mut *c)
                .await?;
            Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sso_logins")
                .fetch_one(&mut *c)
                .await?)
        })
    }

    /// Forgets the oldest sign-ons in progress so that at most `keep` remain.
    pub async fn keep_newest_sso_logins(&mut self, keep: i64) -> Result<()> {
        self.note_write();
        on_tx!(self, c, b => {
            // SQLite needs a LIMIT before OFFSET (-1: none); PostgreSQL takes OFFSET alone.
            let sql = match b {
                crate::db::Backend::Sqlite => {
                    "DELETE FROM sso_logins WHERE state IN (SELECT state FROM sso_logins \
                     ORDER BY created_at DESC, state DESC LIMIT -1 OFFSET $1)"
                }
                crate::db::Backend::Postgres => {
                    "DELETE FROM sso_logins WHERE state IN (SELECT state FROM sso_logins \
                     ORDER BY created_at DESC, state DESC OFFSET $1)"
                }
            };
            sqlx::query(sql)
            .bind(keep.max(0))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Takes (and forgets) a sign-on in progress: its nonce, PKCE verifier and start time.
    pub async fn take_sso_login(
        &mut self,
        state: &str,
    ) -> Result<Option<(String, String, DateTime<Utc>)>> {
        self.note_write();
        on_tx!(self, c, _b => {
            let row = sqlx::query("DELETE FROM sso_logins WHERE state = $1 RETURNING nonce, verifier, created_at")
                .bind(state)
                .fetch_optional(&mut *c)
                .await?;
            match row {
                Some(r) => Ok(Some((r.try_get("nonce")?, r.try_get("verifier")?, r.try_get::<Ts, _>("created_at")?.0))),
                None => Ok(None),
            }
        })
    }

    /// Sets a person's role and teams from their identity provider's claims.
    pub async fn set_user_teams(&mut self, user_id: i64, team_ids: &[i64]) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("DELETE FROM team_members WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *c)
                .await?;
            for team_id in team_ids {
                sqlx::query("INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)")
                    .bind(team_id)
                    .bind(user_id)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        })
    }

    pub async fn set_user_name(
        &mut self,
        user_id: i64,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3")
                .bind(name)
                .bind(Ts(at))
                .bind(user_id)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }
}

impl Tx {
    /// Deletes sign-in state nobody can use any more; returns (sessions, failures, sign-ons).
    pub async fn purge_sign_in_state(
        &mut self,
        sessions_idle_before: DateTime<Utc>,
        now: DateTime<Utc>,
        failures_before: DateTime<Utc>,
        sso_before: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)> {
        self.note_write();
        on_tx!(self, c, _b => {
            let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
                .bind(Ts(now))
                .bind(Ts(sessions_idle_before))
                .execute(&mut *c)
                .await?
                .rows_affected();
            let failures = sqlx::query("DELETE FROM login_failures WHERE at <= $1")
                .bind(Ts(failures_before))
                .execute(&mut *c)
                .await?
                .rows_affected();
            let sso = sqlx::query("DELETE FROM sso_logins WHERE created_at <= $1")
                .bind(Ts(sso_before))
                .execute(&mut *c)
                .await?
                .rows_affected();
            Ok((sessions, failures, sso))
        })
    }
}

impl Tx {
    /// The identity-provider account a person is bound to, if any.
    pub async fn sso_identity(&mut self, user_id: i64) -> Result<Option<String>> {
        on_tx!(self, c, _b => {
            Ok(sqlx::query_scalar::<_, Option<String>>("SELECT sso_identity FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_one(&mut *c)
                .await?)
        })
    }

    pub async fn bind_sso_identity(&mut self, user_id: i64, identity: Option<&str>) -> Result<()> {
        self.note_write();
        on_tx!(self, c, _b => {
            sqlx::query("UPDATE users SET sso_identity = $1 WHERE id = $2")
                .bind(identity)
                .bind(user_id)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }
}
