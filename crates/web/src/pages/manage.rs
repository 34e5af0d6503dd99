//! The admin page's forms: people, teams, API tokens, workloads, channels, routing rules and
//! AWS accounts, and custom KPIs as the JSON the API takes. Each runs the use case the API
//! runs and shows the admin page again with what happened, or why nothing did.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use opsdesk_domain::{Environment, NewUser, NewWorkload, Role};
use serde::Deserialize;
use serde_json::json;

use super::admin::admin_page;
use super::{message, PageError, Visit};
use crate::{ApiError, AppState};

/// The admin page with a notice, or with the reason the change was refused.
async fn outcome<E: Into<ApiError>>(
    state: &AppState,
    visit: Visit,
    result: Result<String, E>,
) -> Result<Response, PageError> {
    match result {
        Ok(notice) => admin_page(state, visit, StatusCode::OK, Some(notice), None).await,
        Err(e) => {
            let (status, text) = message(&e.into());
            admin_page(state, visit, status, None, Some(text)).await
        }
    }
}

fn role(field: &str, raw: &str) -> opsdesk_core::Result<Role> {
    Role::parse(raw).ok_or_else(|| {
        opsdesk_domain::FieldError::new(field, format!("expected one of {}", Role::names())).into()
    })
}

/// Words separated by commas, spaces or lines.
fn words(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct PersonForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    /// Empty: the person signs in with SSO only.
    #[serde(default)]
    password: String,
}

pub async fn add_person(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<PersonForm>,
) -> Result<Response, PageError> {
    let result = async {
        let person = NewUser {
            email: form.email.clone(),
            display_name: Some(form.name.trim().to_owned()).filter(|n| !n.is_empty()),
            role: role("role", &form.role)?,
            teams: Vec::new(),
            password: Some(form.password.clone()).filter(|p| !p.is_empty()),
        };
        let user = state.desk.add_user(&visit.actor, person).await?;
        Ok::<_, opsdesk_core::Error>(format!("{} can now sign in as {}.", user.email, user.role))
    }
    .await;
    outcome(&state, visit, result).await
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

pub async fn set_role(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<RoleForm>,
) -> Result<Response, PageError> {
    let result = async {
        let user = state
            .desk
            .set_user_role(&visit.actor, form.email.trim(), role("role", &form.role)?)
            .await?;
        Ok::<_, opsdesk_core::Error>(format!("{} is now {}.", user.email, user.role))
    }
    .await;
    outcome(&state, visit, result).await
}

pub async fn disable_person(
    State(state): State<AppState>,
    visit: Visit,
    Path(email): Path<String>,
) -> Result<Response, PageError> {
    let result = state
        .desk
        .set_user_active(&visit.actor, &email, false)
        .await
        .map(|u| format!("{} is disabled and signed out.", u.email));
    outcome(&state, visit, result).await
}

pub async fn enable_person(
    State(state): State<AppState>,
    visit: Visit,
    Path(email): Path<String>,
) -> Result<Response, PageError> {
    let result = state
        .desk
        .set_user_active(&visit.actor, &email, true)
        .await
        .map(|u| format!("{} may sign in again.", u.email));
    outcome(&state, visit, result).await
}

#[derive(Debug, Deserialize)]
pub struct TeamForm {
    #[serde(default)]
    name: String,
    /// Empty: no lead.
    #[serde(default)]
    lead: String,
}

pub async fn add_team(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<TeamForm>,
) -> Result<Response, PageError> {
    let lead = Some(form.lead.trim()).filter(|l| !l.is_empty());
    let result = state
        .desk
        .add_team(&visit.actor, form.name.trim(), lead)
        .await
        .map(|t| format!("Team {} is made.", t.name));
    outcome(&state, visit, result).await
}

#[derive(Debug, Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    team: String,
    #[serde(default)]
    email: String,
    /// `add` or `remove`.
    #[serde(default)]
    change: String,
}

pub async fn team_member(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<MemberForm>,
) -> Result<Response, PageError> {
    let add = form.change != "remove";
    let result = state
        .desk
        .set_team_member(&visit.actor, &form.team, form.email.trim(), add)
        .await
        .map(|t| {
            if add {
                format!("{} is in team {}.", form.email.trim(), t.name)
            } else {
                format!("{} left team {}.", form.email.trim(), t.name)
            }
        });
    outcome(&state, visit, result).await
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// Makes an API token and shows its secret this once.
pub async fn create_token(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<TokenForm>,
) -> Result<Response, PageError> {
    let result = async {
        let role = role("role", &form.role)?;
        let (token, secret) = state
            .desk
            .create_token(&visit.actor, form.name.trim(), role)
            .await?;
        Ok::<_, opsdesk_core::Error>(format!(
            "Token {} ({}) is made. Its secret is shown only this once: {secret}",
            token.name, token.role
        ))
    }
    .await;
    outcome(&state, visit, result).await
}

pub async fn revoke_token(
    State(state): State<AppState>,
    visit: Visit,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let result = state
        .desk
        .revoke_token(&visit.actor, &name)
        .await
        .map(|t| format!("Token {} is revoked.", t.name));
    outcome(&state, visit, result).await
}

#[derive(Debug, Deserialize)]
pub struct WorkloadForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    accounts: String,
    #[serde(default)]
    regions: String,
    #[serde(default)]
    resources: String,
}

/// Creates a workload, or replaces the one of the same name.
pub async fn save_workload(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<WorkloadForm>,
) -> Result<Response, PageError> {
    let result = async {
        let environment = Environment::parse(&form.environment).ok_or_else(|| {
            opsdesk_domain::FieldError::new(
                "environment",
                format!("expected one of {}", Environment::names()),
            )
        })?;
        let input = NewWorkload {
            name: form.name.trim().to_owned(),
            environment,
            team: Some(form.team.trim().to_owned()).filter(|t| !t.is_empty()),
            accounts: words(&form.accounts),
            regions: words(&form.regions),
            resources: words(&form.resources),
            tags: Default::default(),
        };
        let w = state.desk.save_workload(&visit.actor, input).await?;
        Ok::<_, opsdesk_core::Error>(format!("Workload {} ({}) is saved.", w.name, w.environment))
    }
    .await;
    outcome(&state, visit, result).await
}

pub async fn delete_workload(
    State(state): State<AppState>,
    visit: Visit,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let result = state
        .desk
        .delete_workload(&visit.actor, &name)
        .await
        .map(|()| format!("Workload {name} is deleted."));
    outcome(&state, visit, result).await
}

/// A definition as the API takes it: JSON, checked field by field.
#[derive(Debug, Deserialize)]
pub struct SpecForm {
    #[serde(default)]
    spec: String,
}

/// A channel from the admin page's fields: the form of each channel type lists its fields
/// (`ChannelType::FIELDS`); only the chosen type's are sent on, and the channel is checked as
/// the API checks it (the field at fault is named).
fn channel_json(form: &[(String, String)]) -> Result<serde_json::Value, ApiError> {
    use opsdesk_domain::channel::spec::Input;
    let value = |key: &str| {
        form.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .unwrap_or_default()
    };
    let kind = value("type");
    let Some(channel_type) = opsdesk_domain::channel::channel_type(kind) else {
        let known: Vec<&str> = opsdesk_domain::channel::TYPES
            .iter()
            .map(|t| t.name())
            .collect();
        return Err(ApiError::invalid(
            "type",
            format!("choose {}, not {kind:?}", known.join(", ")),
        ));
    };
    let mut spec = serde_json::Map::new();
    spec.insert("name".into(), json!(value("name")));
    spec.insert("type".into(), json!(kind));
    for field in channel_type.fields() {
        let v = value(field.key);
        match field.input {
            Input::List => {
                spec.insert(field.key.into(), json!(words(v)));
            }
            Input::Text { required: true } => {
                spec.insert(field.key.into(), json!(v));
            }
            Input::Text { required: false } | Input::Secret | Input::Choice(_) => {
                if let Some(v) = given(v) {
                    spec.insert(field.key.into(), json!(v));
                }
            }
        }
    }
    Ok(serde_json::Value::Object(spec))
}

/// `Some(text)` for a field that was filled in.
fn given(v: &str) -> Option<&str> {
    Some(v.trim()).filter(|v| !v.is_empty())
}

pub async fn save_channel(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let result = async {
        let spec = crate::json::parse(channel_json(&form)?.to_string().as_bytes())?;
        let saved = state.desk.save_channel(&visit.actor, spec).await?;
        Ok::<_, ApiError>(format!("Channel {} is saved.", saved.name))
    }
    .await;
    outcome(&state, visit, result).await
}

pub async fn delete_channel(
    State(state): State<AppState>,
    visit: Visit,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let result = state
        .desk
        .delete_channel(&visit.actor, &name)
        .await
        .map(|()| format!("Channel {name} is deleted."));
    outcome(&state, visit, result).await
}

/// A routing rule from the admin page's fields (ticked boxes repeat their name), checked as
/// the API checks it; it goes after the others.
pub async fn save_rule(
    State(state): State<AppState>,
    visit: Visit,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let result = async {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::Malformed(format!("the form could not be read: {e}")))?;
        let all = |key: &str| -> Vec<String> {
            fields
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let one = |key: &str| all(key).into_iter().next().unwrap_or_default();
        let spec = json!({
            "name": one("name").trim(),
            "events": all("events"),
            "severities": all("severities"),
            "sources": words(&one("sources")),
            "workloads": words(&one("workloads")),
            "teams": words(&one("teams")),
            "tags": words(&one("tags")),
            "channels": all("channels"),
            "stop": one("stop") == "on",
        });
        let rule = crate::json::parse(spec.to_string().as_bytes())?;
        let saved = state
            .desk
            .save_routing_rule(&visit.actor, rule, None)
            .await?;
        Ok::<_, ApiError>(format!(
            "Routing rule {} is saved, after the others.",
            saved.name
        ))
    }
    .await;
    outcome(&state, visit, result).await
}

pub async fn delete_rule(
    State(state): State<AppState>,
    visit: Visit,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let result = state
        .desk
        .delete_routing_rule(&visit.actor, &name)
        .await
        .map(|()| format!("Routing rule {name} is deleted."));
    outcome(&state, visit, result).await
}

pub async fn save_kpi(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<SpecForm>,
) -> Result<Response, PageError> {
    let result = async {
        let spec = crate::json::parse(form.spec.as_bytes())?;
        let kpi = state.desk.save_kpi(&visit.actor, spec).await?;
        Ok::<_, ApiError>(format!(
            "KPI {} is saved; it is evaluated with the others.",
            kpi.info.name
        ))
    }
    .await;
    outcome(&state, visit, result).await
}

pub async fn delete_kpi(
    State(state): State<AppState>,
    visit: Visit,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let result = state
        .desk
        .delete_kpi(&visit.actor, &name)
        .await
        .map(|()| format!("KPI {name} is deleted with its series."));
    outcome(&state, visit, result).await
}

#[derive(Debug, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    support_plan: String,
    #[serde(default)]
    account_team_emails: String,
    #[serde(default)]
    support_role_arn: String,
    #[serde(default)]
    govcloud: Option<String>,
}

/// Adds an AWS account or replaces the one with the same id.
pub async fn save_account(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<AccountForm>,
) -> Result<Response, PageError> {
    let result = async {
        let mut spec = json!({
            "id": form.id.trim(),
            "name": form.name.trim(),
            "support_plan": form.support_plan,
            "account_team_emails": words(&form.account_team_emails),
            "govcloud": form.govcloud.is_some(),
        });
        if let Some(arn) = given(&form.support_role_arn) {
            spec["support_role_arn"] = json!(arn);
        }
        let account = crate::json::parse(spec.to_string().as_bytes())?;
        let saved = state.desk.save_aws_account(&visit.actor, account).await?;
        Ok::<_, ApiError>(format!(
            "AWS account {} is saved with the {} plan.",
            saved.id, saved.support_plan
        ))
    }
    .await;
    outcome(&state, visit, result).await
}

pub async fn delete_account(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let result = state
        .desk
        .delete_aws_account(&visit.actor, &id)
        .await
        .map(|()| format!("AWS account {id} is deleted."));
    outcome(&state, visit, result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_spaces_and_lines() {
        assert_eq!(
            words("111111111111, 222222222222\n arn:aws:rds:*:*:db:orders-*"),
            vec![
                "111111111111",
                "222222222222",
                "arn:aws:rds:*:*:db:orders-*"
            ]
        );
        assert!(words(" ,\n").is_empty());
    }
}

#[derive(Debug, Deserialize)]
pub struct LetterFormInput {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
}

/// Rewrites one letter to requesters.
pub async fn save_letter(
    State(state): State<AppState>,
    visit: Visit,
    Path(kind): Path<String>,
    Form(form): Form<LetterFormInput>,
) -> Result<Response, PageError> {
    let result = async {
        let kind = crate::api::mail::letter_kind(&kind)?;
        let template = opsdesk_domain::mail::LetterTemplate {
            subject: form.subject.trim().to_owned(),
            body: form.body.replace("\r\n", "\n"),
        };
        state
            .desk
            .set_mail_template(&visit.actor, kind, template)
            .await?;
        Ok::<_, ApiError>(format!(
            "The {kind} letter is saved; every node uses it within seconds."
        ))
    }
    .await;
    outcome(&state, visit, result).await
}

/// Goes back to the configured letter.
pub async fn reset_letter(
    State(state): State<AppState>,
    visit: Visit,
    Path(kind): Path<String>,
) -> Result<Response, PageError> {
    let result = async {
        let kind = crate::api::mail::letter_kind(&kind)?;
        state.desk.reset_mail_template(&visit.actor, kind).await?;
        Ok::<_, ApiError>(format!("The {kind} letter is the configured one again."))
    }
    .await;
    outcome(&state, visit, result).await
}
