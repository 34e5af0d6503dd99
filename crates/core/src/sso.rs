//! Single sign-on: people the company's identity provider vouches for get a session, and an
//! account made or updated from what the provider says about them.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use opsdesk_domain::audit::{one_change, AuditEntry, FieldChange};
use opsdesk_domain::Role;
use opsdesk_store::UserRecord;
use serde_json::{json, Value};

use crate::sessions::{random_token, NewSession};
use crate::{Actor, Desk, Error, Result};

/// A sign-on started this long ago can no longer be finished.
pub(crate) const SSO_START_TTL: TimeDelta = TimeDelta::minutes(10);

/// Who signed in, from an ID token whose signature and claims have been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    /// What the provider says of the email; absent when it says nothing.
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    /// Values of the configured groups claim.
    pub groups: Vec<String>,
}

/// How the provider's groups become a role and teams.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoMapping {
    /// Group → role. Of the roles a person's groups give, the strongest wins.
    pub roles: BTreeMap<String, Role>,
    /// The role of a person none of whose groups is mapped.
    pub default_role: Role,
    /// Group → team name; missing teams are created.
    pub teams: BTreeMap<String, String>,
}

impl Default for SsoMapping {
    fn default() -> Self {
        SsoMapping {
            roles: BTreeMap::new(),
            default_role: Role::Requester,
            teams: BTreeMap::new(),
        }
    }
}

/// Strongest first.
const ROLE_ORDER: [Role; 6] = [
    Role::Admin,
    Role::Lead,
    Role::Agent,
    Role::Auditor,
    Role::Viewer,
    Role::Requester,
];

impl SsoMapping {
    pub fn role_for(&self, groups: &[String]) -> Role {
        let given: Vec<Role> = groups
            .iter()
            .filter_map(|g| self.roles.get(g).copied())
            .collect();
        ROLE_ORDER
            .into_iter()
            .find(|r| given.contains(r))
            .unwrap_or(self.default_role)
    }

    pub fn teams_for(&self, groups: &[String]) -> Vec<String> {
        let mut teams: Vec<String> = groups
            .iter()
            .filter_map(|g| self.teams.get(g).cloned())
            .collect();
        teams.sort();
        teams.dedup();
        teams
    }
}

impl Desk {
    /// Remembers a sign-on sent to the identity provider: its state, nonce and PKCE verifier.
    pub async fn sso_begin(&self, state: &str, nonce: &str, verifier: &str) -> Result<()> {
        let (state, nonce, verifier) = (state.to_owned(), nonce.to_owned(), verifier.to_owned());
        self.change(move |tx, now| {
            Box::pin(async move { Ok(tx.insert_sso_login(&state, &nonce, &verifier, now).await?) })
        })
        .await
    }

    /// Takes back a sign-on on its return: its nonce and PKCE verifier, once, within ten
    /// minutes of its start.
    pub async fn sso_resume(&self, state: &str) -> Result<Option<(String, String)>> {
        let state = state.to_owned();
        let taken = self
            .change(move |tx, _now| Box::pin(async move { Ok(tx.take_sso_login(&state).await?) }))
            .await?;
        Ok(taken.and_then(|(nonce, verifier, started)| {
            (self.now() - started < SSO_START_TTL).then_some((nonce, verifier))
        }))
    }

    /// Records a refused sign-on.
    pub async fn sso_refused(&self, reason: &str, client: &str) -> Result<()> {
        let changes = one_change(
            "attempt",
            Value::Null,
            json!({ "method": "oidc", "client": client, "reason": reason }),
        );
        self.change(move |tx, now| {
            Box::pin(async move {
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: "anonymous".into(),
                    action: "auth.login_failed".into(),
                    ticket_id: None,
                    changes,
                })
                .await?;
                Ok(())
            })
        })
        .await?;
        tracing::info!(reason, client, "single sign-on refused");
        Ok(())
    }

    /// Signs in a person the identity provider vouched for: makes their account on first
    /// sign-in, brings its role, name and teams up to date on each one.
    pub async fn login_sso(
        &self,
        who: SsoIdentity,
        mapping: &SsoMapping,
        client: &str,
    ) -> Result<NewSession> {
        let email = crate::people::normalise_email("email", &who.email)?;
        let role = mapping.role_for(&who.groups);
        let teams = mapping.teams_for(&who.groups);
        let name = who
            .name
            .clone()
            .map(|n| {
                n.trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
        let secret = random_token();
        let csrf_token = random_token();
        let max = self.auth_settings().session_max;
        let id_hash = crate::sessions::hash_secret(&secret);
        let (csrf, refused_client, client) =
            (csrf_token.clone(), client.to_owned(), client.to_owned());
        let actor_name = format!("user:{email}");
        let sso = Actor::new("sso", Role::Admin);
        let (issuer, subject) = (who.issuer.clone(), who.subject.clone());
        let identity = format!("{} {}", who.issuer, who.subject);
        let verified = who.email_verified == Some(true);
        let session_actor = actor_name.clone();
        let outcome = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let existing = tx.user_by_email(&email).await?;
                    if let Some(u) = &existing {
                        // An account answers to one identity-provider account. Binding an
                        // existing account takes an email the provider has verified.
                        match tx.sso_identity(u.id).await? {
                            Some(bound) if bound != identity => return Ok(Err("bound to another identity")),
                            Some(_) => {}
                            None if verified => tx.bind_sso_identity(u.id, &identity).await?,
                            None => return Ok(Err("email not verified by the provider")),
                        }
                    }
                    // Accounts made by SSO follow the provider; accounts with a local password
                    // (an admin's break-glass account, say) keep the role and teams set in opsdesk.
                    let (user, role, managed) = match existing {
                        Some(u) if !u.active => return Ok(Err("disabled")),
                        Some(u) if u.has_password => (u.id, u.role, false),
                        Some(u) => {
                            if u.role != role {
                                tx.set_user_role(u.id, role, now).await?;
                                let mut c = one_change("role", json!(u.role), json!(role));
                                c.insert("user".into(), FieldChange { before: json!(email), after: json!(email) });
                                tx.append_audit(AuditEntry { at: now, actor: sso.name.clone(), action: "user.role_changed".into(), ticket_id: None, changes: c }).await?;
                            }
                            if u.display_name != name {
                                tx.set_user_name(u.id, &name, now).await?;
                            }
                            (u.id, role, true)
                        }
                        None => {
                            let id = tx
                                .insert_user(&UserRecord { email: email.clone(), display_name: name.clone(), role, password_hash: None, at: now })
                                .await?;
                            tx.bind_sso_identity(id, &identity).await?;
                            let after = json!({ "id": id, "email": email, "role": role, "teams": teams, "issuer": issuer, "subject": subject });
                            tx.append_audit(AuditEntry { at: now, actor: sso.name.clone(), action: "user.created".into(), ticket_id: None, changes: one_change("user", Value::Null, after) }).await?;
                            (id, role, true)
                        }
                    };
                    if managed {
                        let mut team_ids = Vec::with_capacity(teams.len());
                        for team in &teams {
                            let id = match tx.team_by_name(team).await? {
                                Some((id, _)) => id,
                                None => {
                                    let id = tx.insert_team(team, None, now).await?;
                                    let after = json!({ "id": id, "name": team });
                                    tx.append_audit(AuditEntry { at: now, actor: sso.name.clone(), action: "team.created".into(), ticket_id: None, changes: one_change("team", Value::Null, after) }).await?;
                                    id
                                }
                            };
                            team_ids.push(id);
                        }
                        tx.set_user_teams(user, &team_ids).await?;
                    }
                    tx.insert_session(&id_hash, user, &csrf, now, now + max).await?;
                    let detail = json!({ "method": "oidc", "client": client, "issuer": issuer, "subject": subject });
                    tx.append_audit(AuditEntry { at: now, actor: session_actor, action: "auth.login".into(), ticket_id: None, changes: one_change("session", Value::Null, detail) }).await?;
                    Ok(Ok(role))
                })
            })
            .await?;
        let role = match outcome {
            Ok(role) => role,
            Err(reason) => {
                self.sso_refused(reason, &refused_client).await?;
                return Err(Error::Unauthorized(format!(
                    "single sign-on refused: {reason}"
                )));
            }
        };
        Ok(NewSession {
            secret,
            csrf_token,
            actor: Actor::new(actor_name, role),
            max_age: max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strongest_mapped_role_wins() {
        let mut m = SsoMapping::default();
        m.roles.insert("ops-admins".into(), Role::Admin);
        m.roles.insert("sre".into(), Role::Agent);
        m.teams.insert("sre".into(), "SRE".into());
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(m.role_for(&groups(&["sre", "ops-admins"])), Role::Admin);
        assert_eq!(m.role_for(&groups(&["sre"])), Role::Agent);
        assert_eq!(m.role_for(&groups(&["marketing"])), Role::Requester);
        assert_eq!(m.teams_for(&groups(&["sre", "ops-admins"])), ["SRE"]);
    }
}
