use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use opsdesk_domain::audit::{one_change, AuditEntry, FieldChange};
use opsdesk_domain::{FieldError, Role};
use opsdesk_store::{TokenRecord, TokenSummary, Tx};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{Actor, Desk, Error, Result};

/// Every token starts with this, so secret scanners and people can tell what it is.
pub const TOKEN_PREFIX: &str = "odk_";

/// The name of the token created on a database's first start.
const FIRST_ADMIN: &str = "first-admin";

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// How long a node trusts a token it has looked up. A revocation takes effect at once on the
/// node that made it and within this time on the others.
const TOKEN_TTL: Duration = Duration::from_secs(2);

/// More live tokens than this in the cache and it starts again empty.
const TOKEN_CACHE_MAX: usize = 4_096;

/// Tokens looked up lately, by the hash of their secret. Busy senders (an EventBridge API
/// destination, a monitor) present the same token thousands of times a second; it is read from
/// the database once per `TOKEN_TTL` rather than on every request. Unknown secrets are never
/// kept, so guessing cannot fill it.
#[derive(Debug, Default)]
pub(crate) struct TokenCache(Mutex<Cached>);

#[derive(Debug, Default)]
struct Cached {
    tokens: HashMap<String, (Instant, Actor)>,
    /// Counts the clears, so that a lookup that began before a revocation cannot put the
    /// revoked token back.
    generation: u64,
}

impl TokenCache {
    /// The cached actor, or else the generation to hand to [`TokenCache::put`].
    fn get(&self, hash: &str) -> Result<Actor, u64> {
        let Ok(cache) = self.0.lock() else {
            return Err(u64::MAX);
        };
        match cache.tokens.get(hash) {
            Some((at, actor)) if at.elapsed() < TOKEN_TTL => Ok(actor.clone()),
            _ => Err(cache.generation),
        }
    }

    fn put(&self, hash: String, actor: Actor, generation: u64) {
        if let Ok(mut guard) = self.0.lock() {
            if guard.generation != generation {
                return;
            }
            let cache = &mut guard.tokens;
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.retain(|_, (at, _)| at.elapsed() < TOKEN_TTL);
                if cache.len() >= TOKEN_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(hash, (Instant::now(), actor));
        }
    }

    fn clear(&self) {
        if let Ok(mut cache) = self.0.lock() {
            cache.tokens.clear();
            cache.generation = cache.generation.wrapping_add(1);
        }
    }
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

fn valid_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(FieldError::new("name", "a token name is 1 to 64 of A-Z a-z 0-9 - _ .").into());
    }
    Ok(name.to_owned())
}

/// Stores a new token with its audit entry, inside `tx`.
async fn insert_token(
    tx: &mut Tx,
    actor: &Actor,
    name: &str,
    role: Role,
    now: DateTime<Utc>,
) -> Result<(TokenSummary, String)> {
    // Checked first: a refused change must not have written anything.
    if tx.token_name_taken(name).await? {
        return Err(Error::Conflict(format!(
            "a token named {name:?} already exists"
        )));
    }
    let secret = new_secret();
    let summary = tx
        .insert_token(&TokenRecord {
            name: name.to_owned(),
            role,
            token_hash: hash_secret(&secret),
            created_by: actor.name.clone(),
            created_at: now,
        })
        .await?;
    let after = json!({ "id": summary.id, "name": summary.name, "role": summary.role });
    tx.append_audit(AuditEntry {
        at: now,
        actor: actor.name.clone(),
        action: "token.created".into(),
        ticket_id: None,
        changes: one_change("token", Value::Null, after),
    })
    .await?;
    Ok((summary, secret))
}

impl Desk {
    /// Creates a token and returns it with its secret, which is shown only this once.
    pub async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
    ) -> Result<(TokenSummary, String)> {
        actor.require_admin()?;
        let name = valid_name(name)?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move { insert_token(tx, &actor, &name, role, now).await })
        })
        .await
    }

    /// On a database without any token, creates the first admin token and returns its secret.
    /// Returns None on every later start.
    pub async fn bootstrap_admin_token(&self) -> Result<Option<String>> {
        let outcome = self
            .change(move |tx, now| {
                Box::pin(async move {
                    if tx.count_tokens().await? > 0 {
                        return Ok(None);
                    }
                    let system = Actor::new("system", Role::Admin);
                    let (_, secret) =
                        insert_token(tx, &system, FIRST_ADMIN, Role::Admin, now).await?;
                    Ok(Some(secret))
                })
            })
            .await;
        match outcome {
            // Another node created it first.
            Err(Error::Conflict(_)) => Ok(None),
            other => other,
        }
    }

    pub async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<TokenSummary> {
        actor.require_admin()?;
        // A token revoking itself would leave its holder locked out mid-task (an automation's
        // only admin token, say); another admin token, the web app or the CLI revokes it.
        if actor.name.strip_prefix("token:") == Some(name.trim()) {
            return Err(Error::Conflict(format!(
                "token {name:?} cannot revoke itself: revoke it with another admin token, in the web app or with `opsdesk token revoke`"
            )));
        }
        let (actor, name) = (actor.clone(), name.to_owned());
        let revoked = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let revoked = tx
                        .revoke_token(&name, now)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("active token {name:?}")))?;
                    let token =
                        json!({ "id": revoked.id, "name": revoked.name, "role": revoked.role });
                    let mut changes = one_change(
                        "revoked_at",
                        Value::Null,
                        json!(opsdesk_domain::audit::format_time(now)),
                    );
                    changes.insert(
                        "token".into(),
                        FieldChange {
                            before: token.clone(),
                            after: token,
                        },
                    );
                    tx.append_audit(AuditEntry {
                        at: now,
                        actor: actor.name.clone(),
                        action: "token.revoked".into(),
                        ticket_id: None,
                        changes,
                    })
                    .await?;
                    Ok(revoked)
                })
            })
            .await;
        // Cleared whatever the outcome: a revocation that committed must not be outlived here.
        self.caches.tokens.clear();
        revoked
    }

    pub async fn list_tokens(&self, actor: &Actor) -> Result<Vec<TokenSummary>> {
        actor.require_admin()?;
        Ok(self.db().list_tokens().await?)
    }

    /// The actor a bearer secret stands for, if it is a live token.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Actor>> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 200 {
            return Ok(None);
        }
        let hash = hash_secret(secret);
        let generation = match self.caches.tokens.get(&hash) {
            Ok(actor) => return Ok(Some(actor)),
            Err(generation) => generation,
        };
        let actor = self
            .db()
            .find_token(&hash)
            .await?
            .map(|t| Actor::new(format!("token:{}", t.name), t.role));
        if let Some(actor) = &actor {
            self.caches.tokens.put(hash, actor.clone(), generation);
        }
        Ok(actor)
    }

    /// Whether `secret` is that of a token that was revoked (rather than never issued): a
    /// sender with a revoked token must not keep retrying, so it is told apart.
    pub async fn token_revoked(&self, secret: &str) -> Result<bool> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 200 {
            return Ok(false);
        }
        Ok(self.db().token_revoked(&hash_secret(secret)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_that_began_before_a_revocation_does_not_cache_the_token() {
        let cache = TokenCache::default();
        let actor = Actor::new("token:ci", Role::Agent);
        // A lookup starts, then the token is revoked before it finishes reading.
        let Err(started) = cache.get("h") else {
            panic!("empty cache")
        };
        cache.clear();
        cache.put("h".into(), actor.clone(), started);
        assert!(cache.get("h").is_err(), "the stale answer was cached");
        // A lookup that starts after the revocation caches what it read.
        let Err(now) = cache.get("h") else {
            panic!("empty cache")
        };
        cache.put("h".into(), actor.clone(), now);
        assert_eq!(cache.get("h").ok(), Some(actor));
        cache.clear();
        assert!(cache.get("h").is_err(), "a clear forgets every token");
    }
}
