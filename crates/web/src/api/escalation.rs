//! Escalation of a ticket: by hand to the next tier or to AWS Support, and what the watcher
//! keeps for it (SLA due times, tier, AWS case).

use axum::extract::{Path, State};
use axum::Json;
use opsdesk_core::escalation::Escalation;
use opsdesk_domain::escalation::EscalateTo;
use opsdesk_store::{SupportCaseRecord, TicketClock};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tickets::ticket_id;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(escalate))
        .routes(routes!(ticket_clocks))
}

/// Where to escalate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EscalateRequest {
    /// `next`: the next tier of the ticket's escalation policy; `aws`: an AWS Support case.
    to: EscalateTo,
    /// The AWS account to open the case in (default: the account of the ticket's newest
    /// signal, else of its workload, else the only account opsdesk knows).
    #[serde(default)]
    account: Option<String>,
    /// Why, for the ticket's history.
    #[serde(default)]
    reason: Option<String>,
}

/// Escalate a ticket: hand it to the next tier's team, or send it to AWS Support at the
/// highest severity the account's support plan allows (the decision is noted on the ticket;
/// the case itself is opened by the case worker within seconds).
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/escalate",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key")),
    request_body = EscalateRequest,
    responses(
        (status = 200, description = "Escalated", body = Escalation),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No AWS account known for the ticket (`field`: `account`), or an unknown `to`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No policy applies, the last tier is reached, the ticket is resolved or closed, or an AWS case is already requested or open", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn escalate(
    State(state): State<AppState>,
    crate::auth::Auth(actor): crate::auth::Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EscalateRequest>,
) -> Result<Json<Escalation>, ApiError> {
    Ok(Json(
        state
            .desk
            .escalate(&actor, ticket_id(&id)?, req.to, req.account, req.reason)
            .await?,
    ))
}

/// What opsdesk keeps on a ticket's clocks.
#[derive(Debug, Serialize, ToSchema)]
struct TicketClocks {
    /// SLA due and warning times as last stored, the escalation policy and tier, and when
    /// the ticket moves up if still unacknowledged. Empty until the watcher first looked.
    clock: Option<TicketClock>,
    /// The ticket's AWS Support case.
    aws_case: Option<SupportCaseRecord>,
}

/// A ticket's stored SLA due times, escalation tier and AWS Support case.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/escalation",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id or key")),
    responses(
        (status = 200, description = "The clocks and the case", body = TicketClocks),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn ticket_clocks(
    State(state): State<AppState>,
    crate::auth::Auth(actor): crate::auth::Auth,
    Path(id): Path<String>,
) -> Result<Json<TicketClocks>, ApiError> {
    let (clock, aws_case) = state.desk.ticket_clocks(&actor, ticket_id(&id)?).await?;
    Ok(Json(TicketClocks { clock, aws_case }))
}
