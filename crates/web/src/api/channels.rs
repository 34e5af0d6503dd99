//! Channels, routing rules and deliveries (the notification outbox).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use opsdesk_domain::channel::{ChannelSpec, NotificationEvent};
use opsdesk_domain::routing::{RoutingRule, RuleCheck};
use opsdesk_store::{DeliveryAttempt, OutboxFilter, OutboxItem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::params::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(delete_channel))
        .routes(routes!(test_channel))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(delete_rule))
        .routes(routes!(check_rules))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(retry_delivery))
        .routes(routes!(ticket_deliveries))
}

/// List channels (admin): the config file's, then those added here. Secrets are hidden.
#[utoipa::path(
    get,
    path = "/api/v1/channels",
    tag = "notify",
    responses((status = 200, description = "The channels", body = Vec<ChannelSpec>))
)]
async fn list_channels(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<ChannelSpec>>, ApiError> {
    Ok(Json(state.desk.channels(&actor).await?))
}

/// Add or replace a channel (admin): `type` webhook, email, sns or pagerduty.
#[utoipa::path(
    post,
    path = "/api/v1/channels",
    tag = "notify",
    request_body = ChannelSpec,
    responses(
        (status = 201, description = "Saved; secrets hidden", body = ChannelSpec),
        (status = 409, description = "The name belongs to a channel of the config file", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong; it is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_channel(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(spec): ApiJson<ChannelSpec>,
) -> Result<(StatusCode, Json<ChannelSpec>), ApiError> {
    let saved = state.desk.save_channel(&actor, spec).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// Delete a channel added through the API (admin).
#[utoipa::path(
    delete,
    path = "/api/v1/channels/{name}",
    tag = "notify",
    params(("name" = String, Path, description = "Channel name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such channel kept through the API", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_channel(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.desk.delete_channel(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a test message through a channel (admin). It is queued like any notification;
/// follow it at `GET /api/v1/deliveries/{id}`.
#[utoipa::path(
    post,
    path = "/api/v1/channels/{name}/test",
    tag = "notify",
    params(("name" = String, Path, description = "Channel name")),
    responses(
        (status = 202, description = "Queued", body = OutboxItem),
        (status = 404, description = "No such channel", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn test_channel(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<OutboxItem>), ApiError> {
    let item = state.desk.test_channel(&actor, &name).await?;
    Ok((StatusCode::ACCEPTED, Json(item)))
}

/// Routing rules in the order they are tried: the config file's first.
#[utoipa::path(
    get,
    path = "/api/v1/routing-rules",
    tag = "notify",
    responses((status = 200, description = "The rules", body = Vec<RoutingRule>))
)]
async fn list_rules(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<RoutingRule>>, ApiError> {
    Ok(Json(state.desk.routing_rules(&actor).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Position {
    /// Where the rule goes among those kept through the API (lower first); last when absent.
    position: Option<i64>,
}

/// Add or replace (by name) a routing rule (admin). Its channels must exist.
#[utoipa::path(
    post,
    path = "/api/v1/routing-rules",
    tag = "notify",
    params(Position),
    request_body = RoutingRule,
    responses(
        (status = 201, description = "Saved", body = RoutingRule),
        (status = 422, description = "A field is wrong; it is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_rule(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(p): ApiQuery<Position>,
    ApiJson(rule): ApiJson<RoutingRule>,
) -> Result<(StatusCode, Json<RoutingRule>), ApiError> {
    let saved = state
        .desk
        .save_routing_rule(&actor, rule, p.position)
        .await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// Delete a routing rule kept through the API (admin).
#[utoipa::path(
    delete,
    path = "/api/v1/routing-rules/{name}",
    tag = "notify",
    params(("name" = String, Path, description = "Rule name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_rule(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.desk.delete_routing_rule(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which ticket and event to check the rules against.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleCheckRequest {
    pub event: NotificationEvent,
    /// Ticket id or key.
    #[schema(pattern = r"^\s*([Oo][Pp][Ss]-)?0*[1-9][0-9]{0,17}\s*$")]
    pub ticket: String,
}

/// How the rules judge the event, and where it would go.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleCheckReply {
    pub rules: Vec<RuleCheck>,
    pub channels: Vec<String>,
}

/// Explain which rules an event on a ticket hits, and which do not and why. Sends nothing.
#[utoipa::path(
    post,
    path = "/api/v1/routing-rules/check",
    tag = "notify",
    request_body = RuleCheckRequest,
    responses(
        (status = 200, description = "The verdict of every rule", body = RuleCheckReply),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn check_rules(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(req): ApiJson<RuleCheckRequest>,
) -> Result<Json<RuleCheckReply>, ApiError> {
    let id = opsdesk_domain::Ticket::parse_ref(req.ticket.trim())
        .ok_or_else(|| ApiError::invalid("ticket", "must be a ticket id or key such as OPS-42"))?;
    let ticket = state.desk.ticket(&actor, id).await?;
    let (rules, channels) = state.desk.check_routing(&actor, req.event, &ticket).await?;
    Ok(Json(RuleCheckReply { rules, channels }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryQuery {
    /// `pending`, `delivered` or `dead`.
    #[param(pattern = "^(pending|delivered|dead)$")]
    state: Option<String>,
    ticket_id: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// Deliveries (the outbox), newest first; `?state=dead` lists the dead letters.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries",
    tag = "notify",
    params(DeliveryQuery),
    responses((status = 200, description = "Deliveries", body = Vec<OutboxItem>))
)]
async fn list_deliveries(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<Vec<OutboxItem>>, ApiError> {
    if let Some(s) = q.state.as_deref() {
        if !matches!(s, "pending" | "delivered" | "dead") {
            return Err(ApiError::invalid(
                "state",
                "must be pending, delivered or dead",
            ));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1 to 1000"));
    }
    let filter = OutboxFilter {
        state: q.state,
        ticket_id: q.ticket_id,
        limit,
    };
    Ok(Json(state.desk.deliveries(&actor, &filter).await?))
}

/// One delivery with every attempt made.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: OutboxItem,
    /// Every attempt, oldest first (`attempts` counts them).
    pub attempt_log: Vec<DeliveryAttempt>,
}

/// One delivery and its attempts.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries/{id}",
    tag = "notify",
    params(("id" = i64, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryDetail),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_delivery(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let (delivery, attempt_log) = state.desk.delivery(&actor, id).await?;
    Ok(Json(DeliveryDetail {
        delivery,
        attempt_log,
    }))
}

/// Put a dead-lettered delivery back in the queue.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/retry",
    tag = "notify",
    params(("id" = i64, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued again", body = OutboxItem),
        (status = 409, description = "Not dead-lettered", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn retry_delivery(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<OutboxItem>), ApiError> {
    let item = state.desk.retry_delivery(&actor, id).await?;
    Ok((StatusCode::ACCEPTED, Json(item)))
}

/// The notifications of one ticket, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/deliveries",
    tag = "notify",
    params(("id" = String, Path, description = "Ticket id or key")),
    responses(
        (status = 200, description = "Deliveries", body = Vec<OutboxItem>),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn ticket_deliveries(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<OutboxItem>>, ApiError> {
    let id = super::tickets::ticket_id(id.trim())?;
    state.desk.ticket(&actor, id).await?;
    let filter = OutboxFilter {
        state: None,
        ticket_id: Some(id),
        limit: 1000,
    };
    Ok(Json(state.desk.deliveries(&actor, &filter).await?))
}
