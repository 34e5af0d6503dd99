//! Signing in with a local password, and the sessions that keep a person signed in.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use chrono::TimeDelta;
use opsdesk_domain::audit::{one_change, AuditEntry};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{Actor, Desk, Error, Result};

/// How long sessions live and how hard sign-in may be tried.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// A session unused this long ends.
    pub session_idle: TimeDelta,
    /// A session ends this long after sign-in, used or not.
    pub session_max: TimeDelta,
    /// Failed sign-ins per account within `failure_window` before further tries get 429.
    pub max_failures_per_account: i64,
    /// Failed sign-ins per client address within `failure_window` before further tries get 429.
    pub max_failures_per_address: i64,
    pub failure_window: TimeDelta,
    /// Single sign-ons started and not yet finished (nor ten minutes old) at once, across all
    /// nodes; further starts get 429 until some finish or expire.
    pub max_sso_starts: i64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            session_idle: TimeDelta::hours(2),
            session_max: TimeDelta::hours(12),
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            failure_window: TimeDelta::minutes(15),
            max_sso_starts: 10_000,
        }
    }
}

/// A session just opened: the cookie value (shown once) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub secret: String,
    pub csrf_token: String,
    pub actor: Actor,
    pub max_age: TimeDelta,
}

/// A session in use.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub actor: Actor,
    pub csrf_token: String,
}

/// One message for every failed sign-in, so it tells nobody which accounts exist.
pub const BAD_LOGIN: &str = "the email, password or two-factor code is wrong";

/// The message when the password was right but a required second factor is not set up.
pub const TOTP_NOT_SET_UP: &str =
    "two-factor sign-in is required for this account; ask an admin to set it up";

/// 256 random bits, hex-encoded.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A hash to check against when there is no account, so an unknown email takes as long as a
/// wrong password.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        crate::people::hash_password("no account has this password 7f3a").unwrap_or_default()
    })
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

impl Desk {
    /// Signs a person in with their local password. `client` is their address, for the rate
    /// limit and the audit trail.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        code: Option<&str>,
        client: &str,
    ) -> Result<NewSession> {
        // Anyone can send anything here: what is kept of it (failure table, audit, log) is
        // clipped. A real email is far shorter.
        let email = opsdesk_domain::text::clip(&email.trim().to_lowercase());
        let settings = self.auth_settings().clone();
        // The attempt counts as failed from now until it succeeds, so guesses sent in parallel
        // count against each other.
        let (limit_email, limit_client) = (email.clone(), client.to_owned());
        let limits = settings.clone();
        let attempt = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let (by_email, by_client) = tx
                        .count_login_failures(
                            &limit_email,
                            &limit_client,
                            now - limits.failure_window,
                        )
                        .await?;
                    if by_email >= limits.max_failures_per_account
                        || by_client >= limits.max_failures_per_address
                    {
                        return Ok(None);
                    }
                    Ok(Some(
                        tx.insert_login_failure(&limit_email, &limit_client, now)
                            .await?,
                    ))
                })
            })
            .await?;
        let Some(attempt) = attempt else {
            tracing::warn!(email, client, "sign-in refused: too many failures");
            return Err(Error::Throttled(format!(
                "too many failed sign-ins; try again in {} minutes",
                settings.failure_window.num_minutes()
            )));
        };
        let record = self.db().login_record(&email).await?;
        let (hash, usable) = match &record {
            Some(r) => match &r.password_hash {
                Some(hash) => (hash.clone(), r.active),
                None => (dummy_hash().to_owned(), false),
            },
            None => (dummy_hash().to_owned(), false),
        };
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || verify(&password, &hash))
            .await
            .unwrap_or(false);
        let reason = match (&record, matches, usable) {
            (_, true, true) => None,
            (None, _, _) => Some("unknown email"),
            (Some(r), _, _) if r.password_hash.is_none() => Some("no local password"),
            (Some(_), true, false) => Some("disabled"),
            (Some(_), false, _) => Some("wrong password"),
        };
        let actor_name = format!("user:{email}");
        if let Some(reason) = reason {
            if record.is_some() {
                self.record_login_failure(&email, client, reason).await?;
            } else {
                // An email no account has is anyone's noise: the log and the failure table
                // (purged after the window) keep it, the append-only audit trail does not.
                tracing::info!(email, client, reason, "sign-in refused");
            }
            return Err(Error::Unauthorized(BAD_LOGIN.into()));
        }
        let Some(user) = record else {
            return Err(Error::Unauthorized(BAD_LOGIN.into()));
        };
        let user_id = user.user_id;
        let secret = random_token();
        let csrf_token = random_token();
        let (id_hash, csrf, client) = (hash_secret(&secret), csrf_token.clone(), client.to_owned());
        let name = actor_name.clone();
        let max = settings.session_max;
        let (code, totp_email, failed_client) =
            (code.map(str::to_owned), email.clone(), client.clone());
        let second_factor = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let totp = tx.totp_state(user_id).await?;
                    match (&totp.secret, code) {
                        (Some(secret), Some(code)) => {
                            match crate::totp::check(
                                secret,
                                &totp_email,
                                &code,
                                now,
                                totp.last_step,
                            ) {
                                Some(step) => {
                                    tx.set_totp(user_id, None, None, Some(step), None).await?
                                }
                                None => return Ok(Err("wrong two-factor code")),
                            }
                        }
                        (Some(_), None) => return Ok(Err("no two-factor code")),
                        (None, _) if totp.required => {
                            return Ok(Err("two-factor sign-in not set up"))
                        }
                        (None, _) => {}
                    }
                    // The attempt succeeded: it no longer counts as a failure.
                    tx.delete_login_failure(attempt).await?;
                    tx.insert_session(&id_hash, user_id, &csrf, now, now + max)
                        .await?;
                    let method = if totp.secret.is_some() {
                        "password+totp"
                    } else {
                        "password"
                    };
                    tx.append_audit(AuditEntry {
                        at: now,
                        actor: name,
                        action: "auth.login".into(),
                        ticket_id: None,
                        changes: one_change(
                            "session",
                            Value::Null,
                            json!({ "method": method, "client": client }),
                        ),
                    })
                    .await?;
                    Ok(Ok(()))
                })
            })
            .await?;
        if let Err(reason) = second_factor {
            self.record_login_failure(&email, &failed_client, reason)
                .await?;
            let message = if reason == "two-factor sign-in not set up" {
                TOTP_NOT_SET_UP
            } else {
                BAD_LOGIN
            };
            return Err(Error::Unauthorized(message.into()));
        }
        Ok(NewSession {
            secret,
            csrf_token,
            actor: Actor::new(actor_name, user.role),
            max_age: settings.session_max,
        })
    }

    /// Records a failed sign-in to an account in the audit trail (its attempt already counts
    /// towards the rate limit).
    async fn record_login_failure(
        &self,
        email: &str,
        client: &str,
        reason: &'static str,
    ) -> Result<()> {
        let (email, client) = (email.to_owned(), client.to_owned());
        tracing::info!(email, client, reason, "sign-in refused");
        self.change(move |tx, now| {
            Box::pin(async move {
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: "anonymous".into(),
                    action: "auth.login_failed".into(),
                    ticket_id: None,
                    changes: one_change(
                        "attempt",
                        Value::Null,
                        json!({ "email": email, "client": client, "reason": reason }),
                    ),
                })
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The person behind a session cookie, if the session is alive.
    pub async fn session(&self, secret: &str) -> Result<Option<ActiveSession>> {
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let id_hash = hash_secret(secret);
        let Some(s) = self.db().session(&id_hash).await? else {
            return Ok(None);
        };
        let now = self.now();
        let settings = self.auth_settings();
        if now >= s.expires_at || now - s.last_seen_at >= settings.session_idle {
            return Ok(None);
        }
        if now - s.last_seen_at >= TimeDelta::minutes(1) {
            let id_hash = id_hash.clone();
            self.change(move |tx, now| {
                Box::pin(async move { Ok(tx.touch_session(&id_hash, now).await?) })
            })
            .await?;
        }
        Ok(Some(ActiveSession {
            actor: Actor::new(format!("user:{}", s.email), s.role),
            csrf_token: s.csrf_token,
        }))
    }

    /// Deletes ended sessions, failed sign-ins older than the rate-limit window and sign-ons
    /// never finished; returns how many of each.
    pub async fn purge_sign_in_state(&self) -> Result<(u64, u64, u64)> {
        let settings = self.auth_settings().clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                Ok(tx
                    .purge_sign_in_state(
                        now - settings.session_idle,
                        now,
                        now - settings.failure_window,
                        now - crate::sso::SSO_START_TTL,
                    )
                    .await?)
            })
        })
        .await
    }

    /// Ends a session for good.
    pub async fn logout(&self, secret: &str) -> Result<bool> {
        let Some(active) = self.session(secret).await? else {
            return Ok(false);
        };
        let id_hash = hash_secret(secret);
        self.change(move |tx, now| {
            Box::pin(async move {
                let ended = tx.delete_session(&id_hash).await?;
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: active.actor.name.clone(),
                    action: "auth.logout".into(),
                    ticket_id: None,
                    changes: one_change("session", Value::Null, json!({ "ended": true })),
                })
                .await?;
                Ok(ended)
            })
        })
        .await
    }
}
