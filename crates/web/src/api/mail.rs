//! The mail log (messages that came in and letters that went out) and people's receipts.

use axum::extract::State;
use axum::Json;
use opsdesk_core::mail::MailTemplateView;
use opsdesk_domain::mail::{LetterKind, LetterTemplate};
use opsdesk_store::{MailFilter, MailRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::json::ApiJson;
use crate::params::ApiQuery;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_mail))
        .routes(routes!(get_receipts, set_receipts))
        .routes(routes!(list_templates))
        .routes(routes!(release_mail))
        .routes(routes!(set_template, reset_template))
}

/// A kind of letter named in a path; 404 naming the kinds otherwise.
pub(crate) fn letter_kind(raw: &str) -> Result<LetterKind, ApiError> {
    LetterKind::parse(raw).ok_or_else(|| {
        ApiError::NotFound(format!("letter {raw:?} (one of {})", LetterKind::names()))
    })
}

/// What a released message became.
#[derive(Debug, Serialize, ToSchema)]
struct Released {
    /// `ticket` or `comment`.
    outcome: &'static str,
    ticket_id: Option<i64>,
    comment_id: Option<i64>,
}

/// Releases a held message (`?outcome=held` in the mail log): the agent vouches for its
/// sender. A reply to a ticket becomes the sender's public comment there; a new message opens
/// a ticket for the sender, who becomes a requester if unknown. Audited as `mail.released`.
#[utoipa::path(
    post,
    path = "/api/v1/mail/{id}/release",
    tag = "mail",
    params(("id" = i64, Path, description = "The message's id in the mail log")),
    responses(
        (status = 200, description = "What the message became", body = Released),
        (status = 404, description = "No such message", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The message is not held", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn release_mail(
    State(state): State<AppState>,
    Auth(actor): Auth,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Released>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("message {id:?}")))?;
    let released = match state.desk.release_mail(&actor, id).await? {
        opsdesk_core::mail::MailOutcome::Ticket(t) => Released {
            outcome: "ticket",
            ticket_id: Some(t),
            comment_id: None,
        },
        opsdesk_core::mail::MailOutcome::Comment {
            ticket_id,
            comment_id,
        } => Released {
            outcome: "comment",
            ticket_id: Some(ticket_id),
            comment_id: Some(comment_id),
        },
        other => {
            return Err(ApiError::Internal(format!(
                "a release ended as {}",
                other.as_str()
            )))
        }
    };
    Ok(Json(released))
}

/// The letters to requesters as they are written: each kind's subject and body, and whether
/// an admin rewrote it (otherwise the configured template). Placeholders: `{key}` `{title}`
/// `{name}` `{url}` `{comment}` `{author}` `{reopen_days}`.
#[utoipa::path(
    get,
    path = "/api/v1/mail/templates",
    tag = "mail",
    responses((status = 200, description = "One per kind of letter", body = Vec<MailTemplateView>))
)]
async fn list_templates(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<MailTemplateView>>, ApiError> {
    Ok(Json(state.desk.mail_templates(&actor).await?))
}

/// Rewrites the letter of one kind (`received`, `replied`, `resolved`); every node uses it
/// within seconds. Unknown placeholders are refused.
#[utoipa::path(
    put,
    path = "/api/v1/mail/templates/{kind}",
    tag = "mail",
    params(("kind" = String, Path, description = "received, replied or resolved")),
    request_body = LetterTemplate,
    responses(
        (status = 200, description = "The template as it is now used", body = MailTemplateView),
        (status = 404, description = "No such kind of letter", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty, too long, or an unknown placeholder", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn set_template(
    State(state): State<AppState>,
    Auth(actor): Auth,
    axum::extract::Path(kind): axum::extract::Path<String>,
    ApiJson(template): ApiJson<LetterTemplate>,
) -> Result<Json<MailTemplateView>, ApiError> {
    let kind = letter_kind(&kind)?;
    Ok(Json(
        state.desk.set_mail_template(&actor, kind, template).await?,
    ))
}

/// Goes back to the configured letter of one kind.
#[utoipa::path(
    delete,
    path = "/api/v1/mail/templates/{kind}",
    tag = "mail",
    params(("kind" = String, Path, description = "received, replied or resolved")),
    responses(
        (status = 200, description = "The template as it is now used", body = MailTemplateView),
        (status = 404, description = "No such kind of letter", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn reset_template(
    State(state): State<AppState>,
    Auth(actor): Auth,
    axum::extract::Path(kind): axum::extract::Path<String>,
) -> Result<Json<MailTemplateView>, ApiError> {
    let kind = letter_kind(&kind)?;
    Ok(Json(state.desk.reset_mail_template(&actor, kind).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MailQuery {
    /// `ticket`, `comment`, `held`, `ignored`, `refused` (in) or `queued` (out).
    #[param(pattern = "^(ticket|comment|held|ignored|refused|queued)$")]
    outcome: Option<String>,
    /// `in` or `out`.
    #[param(pattern = "^(in|out)$")]
    direction: Option<String>,
    ticket_id: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The mail log, newest first: every message that came in (with what it became and why)
/// and every letter written to a requester. `?outcome=held` lists what waits for an agent.
#[utoipa::path(
    get,
    path = "/api/v1/mail",
    tag = "mail",
    params(MailQuery),
    responses((status = 200, description = "Messages", body = Vec<MailRecord>))
)]
async fn list_mail(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(q): ApiQuery<MailQuery>,
) -> Result<Json<Vec<MailRecord>>, ApiError> {
    if let Some(o) = q.outcome.as_deref() {
        if !matches!(
            o,
            "ticket" | "comment" | "held" | "ignored" | "refused" | "queued"
        ) {
            return Err(ApiError::invalid(
                "outcome",
                "must be ticket, comment, held, ignored, refused or queued",
            ));
        }
    }
    if let Some(d) = q.direction.as_deref() {
        if !matches!(d, "in" | "out") {
            return Err(ApiError::invalid("direction", "must be in or out"));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1 to 1000"));
    }
    let filter = MailFilter {
        outcome: q.outcome,
        ticket_id: q.ticket_id,
        direction: q.direction,
        limit,
    };
    Ok(Json(state.desk.mail_log(&actor, &filter).await?))
}

/// Whether one gets a receipt by email for each request one raises.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipts {
    pub receipts: bool,
}

/// Whether I get receipts for the requests I raise.
#[utoipa::path(
    get,
    path = "/api/v1/me/receipts",
    tag = "mail",
    responses((status = 200, description = "The setting", body = Receipts))
)]
async fn get_receipts(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Receipts>, ApiError> {
    Ok(Json(Receipts {
        receipts: state.desk.mail_receipts(&actor).await?,
    }))
}

/// Turn my receipts on or off (replies from agents and resolutions still come).
#[utoipa::path(
    put,
    path = "/api/v1/me/receipts",
    tag = "mail",
    request_body = Receipts,
    responses(
        (status = 200, description = "Saved", body = Receipts),
        (status = 403, description = "Not a person (a token)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
async fn set_receipts(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(req): ApiJson<Receipts>,
) -> Result<Json<Receipts>, ApiError> {
    Ok(Json(Receipts {
        receipts: state.desk.set_mail_receipts(&actor, req.receipts).await?,
    }))
}
