//! Single sign-on: people the company's identity provider vouches for get a session, and an
//! account made or updated from what the provider says about them.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use opsdesk_domain::audit::{one_change, AuditEntry, FieldChange};
use opsdesk_domain::sso::{decide, AccountFacts, Refusal, SignOn};
use opsdesk_domain::text::clip;
use opsdesk_domain::{FieldError, Permission, Role, User};
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
    /// Sign-ons never finished are forgotten after ten minutes, and no more than
    /// `max_sso_starts` are kept at once: past that, the oldest are forgotten. A flood of
    /// starts then costs a person only a start older than the flood's last `max_sso_starts`,
    /// never the chance to start at all (refusing new starts would let the flood lock
    /// everyone out of single sign-on).
    pub async fn sso_begin(&self, state: &str, nonce: &str, verifier: &str) -> Result<()> {
        let (state, nonce, verifier) = (state.to_owned(), nonce.to_owned(), verifier.to_owned());
        let max = self.auth_settings().max_sso_starts;
        self.change(move |tx, now| {
            Box::pin(async move {
                if tx.count_sso_logins(now - SSO_START_TTL).await? >= max {
                    tx.keep_newest_sso_logins(max - 1).await?;
                }
                Ok(tx.insert_sso_login(&state, &nonce, &verifier, now).await?)
            })
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

    /// Records the refusal of a sign-on this browser started. `reason` may carry text from
    /// the provider or the request: it is clipped.
    pub async fn sso_refused(&self, reason: &str, client: &str) -> Result<()> {
        let reason = clip(reason);
        tracing::info!(reason, client, "single sign-on refused");
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
        .await
    }

    /// Signs in a person the identity provider vouched for. The account is the one bound to
    /// their provider identity; failing that, and only when the provider says the email is
    /// verified, the account with their email (unless it has a password or two-factor sign-in:
    /// those only an admin links) or a new one. Accounts made by SSO follow the provider's
    /// name and groups at each sign-on. A refusal is audited and returned as
    /// [`SsoOutcome::Refused`].
    pub async fn login_sso(
        &self,
        who: SsoIdentity,
        mapping: &SsoMapping,
        client: &str,
    ) -> Result<SsoOutcome> {
        let email = crate::people::normalise_email("email", &clip(&who.email))?;
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
        let (csrf, client_addr) = (csrf_token.clone(), client.to_owned());
        let sso = Actor::new("sso", Role::Admin);
        let (issuer, subject) = (clip(&who.issuer), clip(&who.subject));
        let identity = sso_identity(&who.issuer, &who.subject);
        let verified = who.email_verified;
        let outcome = self
            .change(move |tx, now| {
                Box::pin(async move {
                    let facts = |u: &User, bound: bool| AccountFacts {
                        active: u.active,
                        has_password: u.has_password,
                        two_factor: u.totp || u.totp_required,
                        bound,
                    };
                    let by_identity = tx.user_by_sso_identity(&identity).await?;
                    let by_email = match &by_identity {
                        Some(_) => None,
                        None => match tx.user_by_email(&email).await? {
                            Some(u) => {
                                let bound = tx.sso_identity(u.id).await?.is_some();
                                Some((u, bound))
                            }
                            None => None,
                        },
                    };
                    let decision = decide(
                        by_identity.as_ref().map(|u| facts(u, true)),
                        by_email.as_ref().map(|(u, bound)| facts(u, *bound)),
                        verified,
                    );
                    let existing = match (decision, by_identity, by_email) {
                        (SignOn::Refuse(why), _, _) => return Ok(Err(why)),
                        (SignOn::BoundAccount, Some(u), _) => Some(u),
                        (SignOn::BindByEmail, _, Some((u, _))) => {
                            tx.bind_sso_identity(u.id, Some(&identity)).await?;
                            Some(u)
                        }
                        _ => None,
                    };
                    // Accounts made by SSO follow the provider; accounts with a local password
                    // (an admin's break-glass account an admin linked, say) keep the role and
                    // teams set in opsdesk.
                    let (user, account_email, role, managed) = match existing {
                        Some(u) if u.has_password => (u.id, u.email, u.role, false),
                        Some(u) => {
                            if u.role != role {
                                tx.set_user_role(u.id, role, now).await?;
                                let mut c = one_change("role", json!(u.role), json!(role));
                                c.insert("user".into(), FieldChange { before: json!(u.email), after: json!(u.email) });
                                tx.append_audit(AuditEntry { at: now, actor: sso.name.clone(), action: "user.role_changed".into(), ticket_id: None, changes: c }).await?;
                            }
                            if u.display_name != name {
                                tx.set_user_name(u.id, &name, now).await?;
                            }
                            (u.id, u.email, role, true)
                        }
                        None => {
                            let id = tx
                                .insert_user(&UserRecord { email: email.clone(), display_name: name.clone(), role, password_hash: None, at: now })
                                .await?;
                            tx.bind_sso_identity(id, Some(&identity)).await?;
                            let after = json!({ "id": id, "email": email, "role": role, "teams": teams, "issuer": issuer, "subject": subject });
                            tx.append_audit(AuditEntry { at: now, actor: sso.name.clone(), action: "user.created".into(), ticket_id: None, changes: one_change("user", Value::Null, after) }).await?;
                            (id, email.clone(), role, true)
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
                    let actor = format!("user:{account_email}");
                    let detail = json!({ "method": "oidc", "client": client_addr, "issuer": issuer, "subject": subject });
                    tx.append_audit(AuditEntry { at: now, actor: actor.clone(), action: "auth.login".into(), ticket_id: None, changes: one_change("session", Value::Null, detail) }).await?;
                    Ok(Ok((actor, role)))
                })
            })
            .await?;
        match outcome {
            Ok((actor_name, role)) => Ok(SsoOutcome::SignedIn(NewSession {
                secret,
                csrf_token,
                actor: Actor::new(actor_name, role),
                max_age: max,
            })),
            Err(why) => {
                self.sso_refused(why.reason(), client).await?;
                Ok(SsoOutcome::Refused(why))
            }
        }
    }

    /// Links a person's account to an identity-provider account (issuer and subject, as in
    /// its ID tokens), or unlinks it (`None`). This is how an account with a local password
    /// or two-factor sign-in comes to accept single sign-on: the provider's word about an
    /// email never does it. Admins only; audited as `user.sso_linked` / `user.sso_unlinked`.
    pub async fn link_sso(
        &self,
        actor: &Actor,
        email: &str,
        identity: Option<(&str, &str)>,
    ) -> Result<User> {
        actor.require(Permission::Administer)?;
        let email = crate::people::normalise_email("email", email)?;
        let link = match identity {
            Some((issuer, subject)) => {
                let (issuer, subject) = (issuer.trim(), subject.trim());
                for (field, value) in [("issuer", issuer), ("subject", subject)] {
                    if value.is_empty()
                        || value.chars().count() > opsdesk_domain::text::OUTSIDE_TEXT_MAX
                        || value.chars().any(|c| c.is_control() || c.is_whitespace())
                    {
                        return Err(FieldError::new(
                            field,
                            "1 to 256 characters, no spaces or control characters",
                        )
                        .into());
                    }
                }
                Some((issuer.to_owned(), subject.to_owned()))
            }
            None => None,
        };
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let user = crate::people::existing_user(tx, &email).await?;
                let before = tx.sso_identity(user.id).await?;
                let after = link.as_ref().map(|(i, s)| sso_identity(i, s));
                if before == after {
                    return Ok(user);
                }
                if let Some(identity) = &after {
                    if let Some(other) = tx.user_by_sso_identity(identity).await? {
                        return Err(Error::Conflict(format!(
                            "that identity is linked to {} already",
                            other.email
                        )));
                    }
                }
                tx.bind_sso_identity(user.id, after.as_deref()).await?;
                let shown = |i: &Option<String>| match i.as_ref().and_then(|i| i.split_once(' ')) {
                    Some((issuer, subject)) => json!({ "issuer": issuer, "subject": subject }),
                    None => Value::Null,
                };
                let mut c = one_change("sso", shown(&before), shown(&after));
                c.insert(
                    "user".into(),
                    FieldChange {
                        before: json!(email),
                        after: json!(email),
                    },
                );
                let action = if after.is_some() {
                    "user.sso_linked"
                } else {
                    "user.sso_unlinked"
                };
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: actor.name.clone(),
                    action: action.into(),
                    ticket_id: None,
                    changes: c,
                })
                .await?;
                Ok(user)
            })
        })
        .await
    }
}

/// How an identity-provider account is stored: its issuer and subject.
fn sso_identity(issuer: &str, subject: &str) -> String {
    format!("{issuer} {subject}")
}

/// How a sign-on with the identity provider ended.
#[derive(Debug)]
pub enum SsoOutcome {
    SignedIn(NewSession),
    /// Refused (and audited) for this reason.
    Refused(Refusal),
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
