use opsdesk_domain::audit::{AuditEntry, FieldChange};
use opsdesk_domain::{FieldError, Role};
use opsdesk_store::{TokenRecord, TokenSummary};
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
        let mut tx = self.db().begin().await?;
        let created = self.insert_token(&mut tx, actor, &name, role).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn insert_token(
        &self,
        tx: &mut opsdesk_store::Tx,
        actor: &Actor,
        name: &str,
        role: Role,
    ) -> Result<(TokenSummary, String)> {
        let secret = new_secret();
        let now = self.now();
        let summary = tx
            .insert_token(&TokenRecord {
                name: name.to_owned(),
                role,
                token_hash: hash_secret(&secret),
                created_by: actor.name.clone(),
                created_at: now,
            })
            .await
            .map_err(|e| {
                if e.is_unique_violation() {
                    Error::Conflict(format!("a token named {name:?} already exists"))
                } else {
                    e.into()
                }
            })?;
        let mut changes = opsdesk_domain::audit::Changes::new();
        changes.insert(
            "token".into(),
            FieldChange {
                before: Value::Null,
                after: json!({ "id": summary.id, "name": summary.name, "role": summary.role }),
            },
        );
        tx.append_audit(AuditEntry {
            at: now,
            actor: actor.name.clone(),
            action: "token.created".into(),
            ticket_id: None,
            changes,
        })
        .await?;
        Ok((summary, secret))
    }

    /// On a database without any token, creates the first admin token and returns its secret.
    /// Returns None on every later start.
    pub async fn bootstrap_admin_token(&self) -> Result<Option<String>> {
        let mut tx = self.db().begin().await?;
        if tx.count_tokens().await? > 0 {
            return Ok(None);
        }
        let actor = Actor::new("system", Role::Admin);
        match self
            .insert_token(&mut tx, &actor, FIRST_ADMIN, Role::Admin)
            .await
        {
            Ok((_, secret)) => {
                tx.commit().await?;
                Ok(Some(secret))
            }
            // Another node created it first.
            Err(Error::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<TokenSummary> {
        actor.require_admin()?;
        let mut tx = self.db().begin().await?;
        let now = self.now();
        let revoked = tx
            .revoke_token(name, now)
            .await?
            .ok_or_else(|| Error::NotFound(format!("active token {name:?}")))?;
        let mut changes = opsdesk_domain::audit::Changes::new();
        changes.insert(
            "revoked_at".into(),
            FieldChange {
                before: Value::Null,
                after: json!(opsdesk_domain::audit::format_time(now)),
            },
        );
        changes.insert(
            "token".into(),
            FieldChange {
                before: json!({ "id": revoked.id, "name": revoked.name, "role": revoked.role }),
                after: json!({ "id": revoked.id, "name": revoked.name, "role": revoked.role }),
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
        tx.commit().await?;
        Ok(revoked)
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
        Ok(self
            .db()
            .find_token(&hash_secret(secret))
            .await?
            .map(|t| Actor::new(format!("token:{}", t.name), t.role)))
    }
}
