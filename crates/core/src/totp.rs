//! Two-factor sign-in with time-based one-time codes (RFC 6238), for local passwords.

use chrono::{DateTime, Utc};
use opsdesk_domain::audit::{AuditEntry, Changes, FieldChange};
use opsdesk_domain::{FieldError, Permission, User};
use rand::RngCore;
use serde_json::json;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::{Actor, Desk, Error, Result};

/// What an authenticator app needs: the secret, and the same as an `otpauth://` URL (the
/// content of the QR code apps scan).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TotpEnrollment {
    pub secret: String,
    pub url: String,
}

fn totp(secret_base32: &str, email: &str) -> Result<Totp> {
    let bytes = Secret::try_from_base32(secret_base32)
        .map_err(|_| Error::Conflict("the stored two-factor secret is unreadable".into()))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(bytes)
        .with_issuer(Some("opsdesk"))
        .with_account_name(email.replace(':', ""))
        .build()
        .map_err(|e| Error::Conflict(format!("two-factor set-up failed: {e}")))
}

/// The time step a code matches, if it is right now and newer than the last one used.
pub(crate) fn check(
    secret: &str,
    email: &str,
    code: &str,
    now: DateTime<Utc>,
    last: Option<i64>,
) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, email).ok()?;
    let counter = t.check(&code, u64::try_from(now.timestamp()).ok()?)?;
    let step = i64::try_from(counter).ok()?;
    // A code is good once (RFC 6238 section 5.2).
    (last.is_none_or(|l| step > l)).then_some(step)
}

fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::from(bytes.to_vec()).to_base32()
}

fn record(actor: &Actor, action: &str, email: &str, at: DateTime<Utc>) -> AuditEntry {
    let mut changes = Changes::new();
    changes.insert(
        "user".into(),
        FieldChange {
            before: json!(email),
            after: json!(email),
        },
    );
    AuditEntry {
        at,
        actor: actor.name.clone(),
        action: action.into(),
        ticket_id: None,
        changes,
    }
}

impl Desk {
    /// Sets up two-factor sign-in for `email`. A person doing it for themself gets a pending
    /// secret that works once they confirm a code from it; an admin's set-up works at once
    /// (they hand the secret over).
    pub async fn enroll_totp(&self, actor: &Actor, email: &str) -> Result<TotpEnrollment> {
        let email = crate::people::normalise_email("email", email)?;
        let for_self = actor.user_email() == Some(email.as_str());
        if !for_self {
            actor.require(Permission::Administer)?;
        }
        let secret = new_secret();
        let url = totp(&secret, &email)?
            .to_url()
            .map_err(|e| Error::Conflict(e.to_string()))?;
        let (actor, stored) = (actor.clone(), secret.clone());
        self.change(move |tx, now| {
            Box::pin(async move {
                let user = crate::people::existing_user(tx, &email).await?;
                if for_self {
                    // A session alone must not be enough to move the account to another device.
                    if tx.totp_state(user.id).await?.secret.is_some() {
                        return Err(Error::Forbidden(
                            "two-factor sign-in is already on; an admin can set it up again".into(),
                        ));
                    }
                    tx.set_totp(user.id, None, Some(Some(&stored)), None, None)
                        .await?;
                } else {
                    tx.set_totp(user.id, Some(Some(&stored)), Some(None), None, None)
                        .await?;
                    tx.append_audit(record(&actor, "user.totp_enabled", &email, now))
                        .await?;
                }
                Ok(())
            })
        })
        .await?;
        Ok(TotpEnrollment { secret, url })
    }

    /// Turns a person's pending secret on, given a current code from it.
    pub async fn confirm_totp(&self, actor: &Actor, code: &str) -> Result<()> {
        let email = actor
            .user_email()
            .ok_or_else(|| {
                Error::Forbidden("only a signed-in person has two-factor sign-in".into())
            })?
            .to_owned();
        let (actor, code) = (actor.clone(), code.to_owned());
        self.change(move |tx, now| {
            Box::pin(async move {
                let user = crate::people::existing_user(tx, &email).await?;
                let state = tx.totp_state(user.id).await?;
                let pending = state
                    .pending
                    .ok_or_else(|| FieldError::new("code", "start the set-up first"))?;
                let step = check(&pending, &email, &code, now, None).ok_or_else(|| {
                    FieldError::new(
                        "code",
                        "the code is not right; check the time on your device",
                    )
                })?;
                tx.set_totp(user.id, Some(Some(&pending)), Some(None), Some(step), None)
                    .await?;
                tx.append_audit(record(&actor, "user.totp_enabled", &email, now))
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Requires (or stops requiring) a two-factor code from a person.
    pub async fn set_totp_required(
        &self,
        actor: &Actor,
        email: &str,
        required: bool,
    ) -> Result<User> {
        actor.require(Permission::Administer)?;
        let email = crate::people::normalise_email("email", email)?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let user = crate::people::existing_user(tx, &email).await?;
                if user.totp_required != required {
                    tx.set_totp(user.id, None, None, None, Some(required))
                        .await?;
                    let action = if required {
                        "user.totp_required"
                    } else {
                        "user.totp_not_required"
                    };
                    tx.append_audit(record(&actor, action, &email, now)).await?;
                }
                crate::people::existing_user(tx, &email).await
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn codes_match_their_time_and_are_good_once() {
        let secret = new_secret();
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let t = totp(&secret, "ana@example.com").unwrap();
        let code = t.generate(1_800_000_000).to_string();
        let step = check(&secret, "ana@example.com", &code, now, None).unwrap();
        assert_eq!(
            check(&secret, "ana@example.com", &code, now, Some(step)),
            None,
            "replayed"
        );
        let later = now + chrono::TimeDelta::minutes(5);
        assert_eq!(
            check(&secret, "ana@example.com", &code, later, None),
            None,
            "too old"
        );
        assert_eq!(check(&secret, "ana@example.com", "12345", now, None), None);
        assert_eq!(check(&secret, "ana@example.com", "abcdef", now, None), None);
    }
}
