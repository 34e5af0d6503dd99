//! People and teams: who may sign in, with which role, in which teams.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use opsdesk_domain::audit::{one_change, AuditEntry, Changes, FieldChange};
use opsdesk_domain::{FieldError, NewUser, Permission, Role, Team, User};
use opsdesk_store::{Tx, UserRecord};
use serde_json::{json, Value};

use crate::{Actor, Desk, Error, Result};

/// Local passwords are at least this long.
pub const PASSWORD_MIN: usize = 12;

const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Reads an email address as stored: trimmed and in lower case.
pub fn normalise_email(field: &str, email: &str) -> Result<String, FieldError> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@')
                && !domain.starts_with('.') && !domain.ends_with('.'));
    if valid {
        Ok(e)
    } else {
        Err(FieldError::new(
            field,
            "must be an email address such as ana@example.com",
        ))
    }
}

/// Checks a new password and returns its argon2id hash.
pub fn hash_password(password: &str) -> Result<String, FieldError> {
    if password.chars().count() < PASSWORD_MIN {
        return Err(FieldError::new(
            "password",
            format!("must be at least {PASSWORD_MIN} characters"),
        ));
    }
    if password.chars().count() > 1024 {
        return Err(FieldError::new(
            "password",
            "must be at most 1024 characters",
        ));
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.lines().any(|common| common == lower) {
        return Err(FieldError::new("password", "is too common; choose another"));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| FieldError::new("password", format!("cannot be hashed: {e}")))
}

fn team_name(name: &str) -> Result<String, FieldError> {
    let n = name.trim();
    if n.is_empty()
        || n.len() > 64
        || !n
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))
    {
        return Err(FieldError::new(
            "name",
            "a team name is 1 to 64 letters, digits, spaces and - _ .",
        ));
    }
    Ok(n.to_owned())
}

async fn record(
    tx: &mut Tx,
    actor: &Actor,
    action: &str,
    changes: Changes,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    tx.append_audit(AuditEntry {
        at,
        actor: actor.name.clone(),
        action: action.to_owned(),
        ticket_id: None,
        changes,
    })
    .await?;
    Ok(())
}

pub(crate) async fn existing_user(tx: &mut Tx, email: &str) -> Result<User> {
    tx.user_by_email(email)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {email}")))
}

impl Desk {
    pub async fn add_user(&self, actor: &Actor, input: NewUser) -> Result<User> {
        actor.require(Permission::Administer)?;
        let email = normalise_email("email", &input.email)?;
        if !input.role.for_people() {
            return Err(FieldError::new("role", "the ingest role is for API tokens only").into());
        }
        let display_name = match input.display_name.map(|d| d.trim().to_owned()) {
            Some(d) if !d.is_empty() => {
                if d.chars().count() > 200 || d.chars().any(char::is_control) {
                    return Err(FieldError::new(
                        "display_name",
                        "1 to 200 characters, no control characters",
                    )
                    .into());
                }
                d
            }
            _ => email.split('@').next().unwrap_or_default().to_owned(),
        };
        let password_hash = input.password.as_deref().map(hash_password).transpose()?;
        let teams = input
            .teams
            .iter()
            .enumerate()
            .map(|(i, t)| {
                team_name(t).map_err(|e| FieldError::new(format!("teams[{i}]"), e.message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                if tx.user_by_email(&email).await?.is_some() {
                    return Err(Error::Conflict(format!("a user with the email {email} exists")));
                }
                let mut team_ids = Vec::new();
                for (i, name) in teams.iter().enumerate() {
                    let (id, _) = tx.team_by_name(name).await?.ok_or_else(|| {
                        FieldError::new(format!("teams[{i}]"), format!("there is no team {name:?}"))
                    })?;
                    team_ids.push(id);
                }
                let id = tx
                    .insert_user(&UserRecord {
                        email: email.clone(),
                        display_name,
                        role: input.role,
                        password_hash,
                        at: now,
                    })
                    .await?;
                for team_id in team_ids {
                    tx.add_team_member(team_id, id).await?;
                }
                let user = existing_user(tx, &email).await?;
                let after = json!({ "id": user.id, "email": user.email, "role": user.role, "teams": user.teams });
                record(tx, &actor, "user.created", one_change("user", Value::Null, after), now).await?;
                Ok(user)
            })
        })
        .await
    }

    /// Changes a person's role. The last active admin cannot be made something else: nobody
    /// could administer the desk from its pages any more.
    pub async fn set_user_role(&self, actor: &Actor, email: &str, role: Role) -> Result<User> {
        actor.require(Permission::Administer)?;
        let email = normalise_email("email", email)?;
        if !role.for_people() {
            return Err(FieldError::new("role", "the ingest role is for API tokens only").into());
        }
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let user = existing_user(tx, &email).await?;
                if user.role == role {
                    return Ok(user);
                }
                if user.role == Role::Admin && user.active {
                    keep_an_admin(tx, &email, "made something else").await?;
                }
                tx.set_user_role(user.id, role, now).await?;
                let mut c = one_change("role", json!(user.role), json!(role));
                c.insert(
                    "user".into(),
                    FieldChange {
                        before: json!(email),
                        after: json!(email),
                    },
                );
                record(tx, &actor, "user.role_changed", c, now).await?;
                existing_user(tx, &email).await
            })
        })
        .await
    }

    /// Disables (or enables again) a person. A disabled person cannot sign in. The last active
    /// admin cannot be disabled.
    pub async fn set_user_active(&self, actor: &Actor, email: &str, active: bool) -> Result<User> {
        actor.require(Permission::Administer)?;
        let email = normalise_email("email", email)?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let user = existing_user(tx, &email).await?;
                if user.active == active {
                    return Ok(user);
                }
                if !active && user.role == Role::Admin {
                    keep_an_admin(tx, &email, "disabled").await?;
                }
                tx.set_user_active(user.id, active, now).await?;
                if !active {
                    // Signed out everywhere at once.
                    tx.delete_user_sessions(user.id).await?;
                }
                let mut c = one_change("active", json!(user.active), json!(active));
                c.insert(
                    "user".into(),
                    FieldChange {
                        before: json!(email),
                        after: json!(email),
                    },
                );
                let action = if active {
                    "user.enabled"
                } else {
                    "user.disabled"
                };
                record(tx, &actor, action, c, now).await?;
                existing_user(tx, &email).await
            })
        })
        .await
    }

    pub async fn users(&self, actor: &Actor) -> Result<Vec<User>> {
        actor.require(Permission::Administer)?;
        Ok(self.db().users().await?)
    }

    pub async fn user(&self, actor: &Actor, email: &str) -> Result<User> {
        actor.require(Permission::Administer)?;
        let email = normalise_email("email", email)?;
        self.db()
            .user(&email)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {email}")))
    }

    pub async fn add_team(&self, actor: &Actor, name: &str, lead: Option<&str>) -> Result<Team> {
        actor.require(Permission::Administer)?;
        let name = team_name(name)?;
        let lead = lead.map(|l| normalise_email("lead", l)).transpose()?;
        let actor = actor.clone();
        let created = name.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                if tx.team_by_name(&name).await?.is_some() {
                    return Err(Error::Conflict(format!("a team named {name:?} exists")));
                }
                let lead_id = match &lead {
                    Some(email) => Some(
                        tx.user_by_email(email)
                            .await?
                            .ok_or_else(|| {
                                FieldError::new("lead", format!("there is no user {email}"))
                            })?
                            .id,
                    ),
                    None => None,
                };
                let team_id = tx.insert_team(&name, lead_id, now).await?;
                if let Some(user_id) = lead_id {
                    tx.add_team_member(team_id, user_id).await?;
                }
                let after = json!({ "id": team_id, "name": name, "lead": lead });
                record(
                    tx,
                    &actor,
                    "team.created",
                    one_change("team", Value::Null, after),
                    now,
                )
                .await
            })
        })
        .await?;
        self.team(&created).await
    }

    async fn team(&self, name: &str) -> Result<Team> {
        self.db()
            .teams()
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::NotFound(format!("team {name:?}")))
    }

    pub async fn teams(&self, actor: &Actor) -> Result<Vec<Team>> {
        actor.require(Permission::ReadInventory)?;
        Ok(self.db().teams().await?)
    }

    /// Adds or removes a member: an admin, or the team's lead.
    pub async fn set_team_member(
        &self,
        actor: &Actor,
        team: &str,
        email: &str,
        member: bool,
    ) -> Result<Team> {
        actor.require(Permission::ManageTeam)?;
        let team = team_name(team)?;
        let email = normalise_email("email", email)?;
        let actor = actor.clone();
        let name = team.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let (team_id, lead_id) = tx
                    .team_by_name(&team)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("team {team:?}")))?;
                if !actor.role.allows(Permission::Administer) {
                    let leads = match (lead_id, actor.user_email()) {
                        (Some(lead), Some(me)) => {
                            tx.user_by_email(me).await?.is_some_and(|u| u.id == lead)
                        }
                        _ => false,
                    };
                    if !leads {
                        return Err(Error::Forbidden(format!(
                            "only an admin or the lead of {team:?} can change its members"
                        )));
                    }
                }
                let user = existing_user(tx, &email).await?;
                let changed = if member {
                    tx.add_team_member(team_id, user.id).await?
                } else {
                    tx.remove_team_member(team_id, user.id).await?
                };
                if changed {
                    let (before, after) = if member {
                        (Value::Null, json!(email))
                    } else {
                        (json!(email), Value::Null)
                    };
                    let mut c = one_change("member", before, after);
                    c.insert(
                        "team".into(),
                        FieldChange {
                            before: json!(team),
                            after: json!(team),
                        },
                    );
                    let action = if member {
                        "team.member_added"
                    } else {
                        "team.member_removed"
                    };
                    record(tx, &actor, action, c, now).await?;
                }
                Ok(())
            })
        })
        .await?;
        self.team(&name).await
    }
}

/// Refuses a change that would leave no active admin among people.
async fn keep_an_admin(tx: &mut Tx, email: &str, what: &str) -> Result<()> {
    if tx.active_admins().await? <= 1 {
        return Err(Error::Conflict(format!(
            "{email} is the last active admin and cannot be {what}: make someone else an admin first"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("email", " Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        for bad in [
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a na@example.com",
            "a@b@c.d",
            "ana@.com",
        ] {
            assert!(normalise_email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_long_and_uncommon() {
        assert_eq!(hash_password("short").unwrap_err().field, "password");
        assert!(
            hash_password("Password1234").is_err(),
            "common, whatever the case"
        );
        let hash = hash_password("plum-tractor-velvet-42").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
    }
}
