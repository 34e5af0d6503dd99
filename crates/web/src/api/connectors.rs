//! Connectors to other ticketing systems: what is configured, and the links of a ticket.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use opsdesk_domain::connector::ConnectorSpec;
use opsdesk_store::ExternalLink;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tickets::ticket_id;
use crate::auth::Auth;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connectors))
        .routes(routes!(ticket_links, push_ticket))
        .routes(routes!(connector_webhook))
}

/// What a webhook call did.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    /// How many of the other system's tickets the call named: their sync starts within a
    /// second.
    pub tickets: usize,
}

/// Called by the other system when its tickets change (an RT scrip, a Jira admin webhook, a
/// ServiceNow business rule), so that changes arrive at once rather than at the next poll.
/// Authenticated by the connector's `webhook_secret`: Jira's `X-Hub-Signature` (HMAC-SHA256
/// of the body), otherwise the `X-Opsdesk-Webhook-Secret` header. The call only names
/// tickets; what changed is read through the other system's API, so a call delivered twice
/// or late changes nothing. A call that names no ticket (a Jira event about something else)
/// answers 202 with `tickets: 0`.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{name}/webhook",
    tag = "connectors",
    params(("name" = String, Path, description = "The connector's name")),
    request_body(content = Object, description = "The other system's call: Jira's webhook event, or {\"ticket\": id} from an RT scrip, or {\"sys_id\": id} from a ServiceNow business rule"),
    responses(
        (status = 202, description = "The named tickets are being synced", body = WebhookAnswer),
        (status = 403, description = "Refused, for any reason alike (which connectors exist is not told; the server's log says why): no such connector, its webhook is off (no webhook_secret), the secret or signature is missing or wrong, or the body is not the system's call", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
async fn connector_webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let header = |name: &str| -> Option<String> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let tickets = state.desk.connector_webhook(&name, &header, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(WebhookAnswer { tickets })))
}

/// The connectors of the configuration (`[[connectors]]`), passwords and tokens shown as `***`.
#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    tag = "connectors",
    responses((status = 200, description = "The connectors", body = Vec<ConnectorSpec>))
)]
async fn list_connectors(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<ConnectorSpec>>, ApiError> {
    Ok(Json(state.desk.connectors(&actor)?))
}

/// The ticket's links with tickets in other systems (staff only).
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/external",
    tag = "connectors",
    params(("id" = String, Path, description = "Ticket id or key")),
    responses((status = 200, description = "The links, oldest first", body = Vec<ExternalLink>))
)]
async fn ticket_links(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<ExternalLink>>, ApiError> {
    Ok(Json(
        state.desk.external_links(&actor, ticket_id(&id)?).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PushBody {
    /// The connector's name.
    #[schema(max_length = 32, pattern = r"^[a-z0-9_-]{1,32}$")]
    connector: String,
}

/// Sends the ticket to a connector's system: makes the remote ticket and links the two. A
/// ticket linked already answers its link (200). When the other side cannot be reached the
/// link is made anyway, says why in `detail`, and the connector keeps trying.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/external",
    tag = "connectors",
    params(("id" = String, Path, description = "Ticket id or key")),
    request_body = PushBody,
    responses(
        (status = 201, description = "The new link", body = ExternalLink),
        (status = 200, description = "The ticket was linked already", body = ExternalLink),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such connector", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn push_ticket(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PushBody>,
) -> Result<(StatusCode, Json<ExternalLink>), ApiError> {
    let (link, created) = state
        .desk
        .push_ticket(&actor, ticket_id(&id)?, &body.connector)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(link)))
}
