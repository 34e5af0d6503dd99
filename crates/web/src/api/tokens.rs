use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use opsdesk_domain::{Role, TokenSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// 1 to 64 of A-Z a-z 0-9 - _ .; unique.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    name: String,
    role: Role,
}

/// A created token with its secret, which is shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedToken {
    token: TokenSummary,
    /// Send as `Authorization: Bearer <secret>`. It cannot be shown again.
    secret: String,
}

/// Create an API token (admin).
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body = NewToken,
    responses(
        (status = 201, description = "Created; the secret is in this answer only", body = CreatedToken),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or role", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_token(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let (token, secret) = state
        .desk
        .create_token(&actor, &input.name, input.role)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

/// List API tokens, active and revoked (admin). Secrets are never shown.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "The tokens", body = Vec<TokenSummary>),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_tokens(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<TokenSummary>>, ApiError> {
    Ok(Json(state.desk.list_tokens(&actor).await?))
}

/// Revoke an API token by name (admin); it is refused from the next request on.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{name}",
    tag = "tokens",
    params(("name" = String, Path, description = "Token name")),
    responses(
        (status = 200, description = "Revoked", body = TokenSummary),
        (status = 404, description = "No active token by that name", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The token sending the request cannot revoke itself", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_token(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> Result<Json<TokenSummary>, ApiError> {
    Ok(Json(state.desk.revoke_token(&actor, &name).await?))
}
