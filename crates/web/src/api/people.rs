use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use opsdesk_domain::{NewUser, Role, Team, User};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_user, list_users))
        .routes(routes!(get_user, update_user))
        .routes(routes!(add_team, list_teams))
        .routes(routes!(add_member))
        .routes(routes!(remove_member))
        .routes(routes!(me))
        .routes(routes!(start_totp))
        .routes(routes!(confirm_totp))
}

/// What an authenticator app needs.
#[derive(Debug, serde::Serialize, ToSchema)]
struct TotpSetUp {
    /// Base32 secret, for typing in.
    secret: String,
    /// `otpauth://` URL, the content of the QR code apps scan.
    url: String,
}

/// Start setting up two-factor sign-in for yourself; confirm with a code to turn it on.
#[utoipa::path(
    post,
    path = "/api/v1/me/totp",
    tag = "people",
    responses(
        (status = 200, description = "The secret to put in an authenticator app", body = TotpSetUp),
        (status = 403, description = "Not a signed-in person", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn start_totp(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<TotpSetUp>, ApiError> {
    let email = actor
        .user_email()
        .ok_or_else(|| {
            ApiError::Forbidden("only a signed-in person has two-factor sign-in".into())
        })?
        .to_owned();
    let e = state.desk.enroll_totp(&actor, &email).await?;
    Ok(Json(TotpSetUp {
        secret: e.secret,
        url: e.url,
    }))
}

/// A code from the authenticator app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TotpCode {
    code: String,
}

/// Turn two-factor sign-in on with a current code from the app.
#[utoipa::path(
    post,
    path = "/api/v1/me/totp/confirm",
    tag = "people",
    request_body = TotpCode,
    responses(
        (status = 204, description = "On: sign-in now asks for a code"),
        (status = 422, description = "The code is not right", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn confirm_totp(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<TotpCode>,
) -> Result<StatusCode, ApiError> {
    state.desk.confirm_totp(&actor, &input.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the caller is.
#[derive(Debug, serde::Serialize, ToSchema)]
struct Me {
    /// `user:<email>` for a person, `token:<name>` for an API token.
    name: String,
    role: Role,
    /// On a session: send it as `X-CSRF-Token` with every change.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

/// Who am I: the person or token behind this request.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "people",
    responses((status = 200, description = "The caller", body = Me))
)]
async fn me(
    Auth(actor): Auth,
    csrf: Option<axum::Extension<crate::auth::SessionCsrf>>,
) -> Json<Me> {
    Json(Me {
        name: actor.name,
        role: actor.role,
        csrf_token: csrf.map(|c| c.0 .0),
    })
}

/// Add a person (admin).
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "people",
    request_body = NewUser,
    responses(
        (status = 201, description = "Added", body = User),
        (status = 409, description = "The email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; `field` names it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn add_user(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.desk.add_user(&actor, input).await?),
    ))
}

/// Everyone, by email (admin).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "people",
    responses((status = 200, description = "The people", body = Vec<User>))
)]
async fn list_users(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(state.desk.users(&actor).await?))
}

/// One person (admin).
#[utoipa::path(
    get,
    path = "/api/v1/users/{email}",
    tag = "people",
    params(("email" = String, Path, description = "Their email, in any case")),
    responses(
        (status = 200, description = "The person", body = User),
        (status = 404, description = "No such person", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_user(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(email): Path<String>,
) -> Result<Json<User>, ApiError> {
    let email = person(&email)?;
    Ok(Json(state.desk.user(&actor, &email).await?))
}

/// An email in a path that is not an email address names nobody: 404, as for anyone unknown.
fn person(email: &str) -> Result<String, ApiError> {
    opsdesk_core::people::normalise_email("email", email)
        .map_err(|_| ApiError::NotFound(format!("no person {email:?}")))
}

/// A change to a person.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserChange {
    #[serde(default)]
    role: Option<Role>,
    /// false disables the person: they can no longer sign in.
    #[serde(default)]
    active: Option<bool>,
    /// true requires a two-factor code when they sign in with a password.
    #[serde(default)]
    totp_required: Option<bool>,
}

/// Change a person's role, or disable / enable them (admin). Each change is audited.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{email}",
    tag = "people",
    params(("email" = String, Path, description = "Their email, in any case")),
    request_body = UserChange,
    responses(
        (status = 200, description = "The person after the change", body = User),
        (status = 404, description = "No such person", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last active admin cannot be disabled or made something else", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_user(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(email): Path<String>,
    ApiJson(change): ApiJson<UserChange>,
) -> Result<Json<User>, ApiError> {
    let email = person(&email)?;
    let mut user = state.desk.user(&actor, &email).await?;
    if let Some(role) = change.role {
        user = state.desk.set_user_role(&actor, &email, role).await?;
    }
    if let Some(active) = change.active {
        user = state.desk.set_user_active(&actor, &email, active).await?;
    }
    if let Some(required) = change.totp_required {
        user = state
            .desk
            .set_totp_required(&actor, &email, required)
            .await?;
    }
    Ok(Json(user))
}

/// A team to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewTeam {
    /// 1 to 64 letters, digits, spaces and `- _ .`.
    #[schema(pattern = r"^[A-Za-z0-9._-]([A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?$")]
    name: String,
    /// The lead's email; they become a member too.
    #[serde(default)]
    lead: Option<String>,
}

/// Add a team (admin).
#[utoipa::path(
    post,
    path = "/api/v1/teams",
    tag = "people",
    request_body = NewTeam,
    responses(
        (status = 201, description = "Added", body = Team),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn add_team(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<NewTeam>,
) -> Result<(StatusCode, Json<Team>), ApiError> {
    let team = state
        .desk
        .add_team(&actor, &input.name, input.lead.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(team)))
}

/// Every team with its lead and members.
#[utoipa::path(
    get,
    path = "/api/v1/teams",
    tag = "people",
    responses((status = 200, description = "The teams", body = Vec<Team>))
)]
async fn list_teams(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<Team>>, ApiError> {
    Ok(Json(state.desk.teams(&actor).await?))
}

/// A member to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewMember {
    #[schema(format = Email)]
    email: String,
}

/// Add a member to a team (admin, or the team's lead).
#[utoipa::path(
    post,
    path = "/api/v1/teams/{name}/members",
    tag = "people",
    params(("name" = String, Path, description = "Team name")),
    request_body = NewMember,
    responses(
        (status = 200, description = "The team", body = Team),
        (status = 403, description = "Not an admin nor this team's lead", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn add_member(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<NewMember>,
) -> Result<Json<Team>, ApiError> {
    let team = state
        .desk
        .set_team_member(&actor, &name, &input.email, true)
        .await;
    Ok(Json(team.map_err(|e| team_in_path(&name, e))?))
}

/// A team name in a path that is not a team name names no team: 404, as for any unknown team.
fn team_in_path(name: &str, e: opsdesk_core::Error) -> ApiError {
    match ApiError::from(e) {
        ApiError::Invalid { field, .. } if field == "name" => {
            ApiError::NotFound(format!("no team {name:?}"))
        }
        other => other,
    }
}

/// Remove a member from a team (admin, or the team's lead).
#[utoipa::path(
    delete,
    path = "/api/v1/teams/{name}/members/{email}",
    tag = "people",
    params(
        ("name" = String, Path, description = "Team name"),
        ("email" = String, Path, description = "The member's email"),
    ),
    responses((status = 200, description = "The team", body = Team))
)]
async fn remove_member(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((name, email)): Path<(String, String)>,
) -> Result<Json<Team>, ApiError> {
    let email = person(&email)?;
    let team = state
        .desk
        .set_team_member(&actor, &name, &email, false)
        .await;
    Ok(Json(team.map_err(|e| team_in_path(&name, e))?))
}
