//! Signals in: EventBridge events, alerts from any monitor, webhooks of the sources that take
//! them (Alertmanager, Grafana: [`opsdesk_domain::signal::source`]); and the signals opsdesk
//! has stored.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use opsdesk_core::signals::{Effect, Outcome};
use opsdesk_core::Actor;
use opsdesk_domain::signal::{alertmanager, alerts, eventbridge, source};
use opsdesk_domain::{Signal, Ticket};
use opsdesk_store::{Correlation, SignalFilter, SignalRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_events))
        .routes(routes!(post_alert))
        .routes(routes!(post_alertmanager))
        .routes(routes!(post_webhook))
        .routes(routes!(list_signals))
        .routes(routes!(ticket_signals))
}

/// What a delivery did, answered once it is committed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Signals taken, repeated deliveries included.
    pub accepted: usize,
    /// Tickets opened or changed, each once.
    pub tickets: Vec<i64>,
    /// One result per signal, in the order sent.
    pub results: Vec<Outcome>,
}

impl Accepted {
    pub fn from_outcomes(results: Vec<Outcome>) -> Accepted {
        let mut tickets: Vec<i64> = Vec::new();
        for id in results.iter().filter_map(|o| o.ticket_id) {
            if !tickets.contains(&id) {
                tickets.push(id);
            }
        }
        Accepted {
            accepted: results.len(),
            tickets,
            results,
        }
    }
}

/// Counts a refused delivery and says why in the log.
pub fn refused(input: &'static str, e: ApiError) -> ApiError {
    let reason = match &e {
        ApiError::Malformed(_) => "malformed",
        ApiError::Invalid { .. } => "invalid",
        ApiError::Unauthorized(_) => "unauthorized",
        ApiError::Forbidden(_) | ApiError::RoleNotAllowed(_) => "forbidden",
        ApiError::TooLarge { .. } => "too_large",
        ApiError::UnsupportedMediaType(_) => "media_type",
        _ => "error",
    };
    metrics::counter!("opsdesk_ingest_refused_total", "input" => input, "reason" => reason)
        .increment(1);
    tracing::warn!(input, reason, error = %e, "delivery refused");
    e
}

/// A delivery refused for a bad field, counted and logged.
pub fn refused_field(input: &'static str, e: opsdesk_domain::FieldError) -> ApiError {
    refused(input, ApiError::invalid(e.field, e.message))
}

/// Takes signals in one transaction; a failure is counted as a refused delivery.
pub async fn ingest(
    state: &AppState,
    actor: &Actor,
    input: &'static str,
    signals: Vec<Signal>,
) -> Result<Vec<Outcome>, ApiError> {
    state
        .desk
        .ingest(actor, signals)
        .await
        .map_err(|e| refused(input, e.into()))
}

/// Take EventBridge events: one event, or a JSON array of them (ingest token, as
/// `Authorization: Bearer` or `x-api-key`).
///
/// AWS Health, Trusted Advisor and CloudWatch alarm events open, update and resolve tickets;
/// other well-formed events are kept as unclassified signals. The answer comes after commit.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "signals",
    request_body(content = Object, description = "An EventBridge event or an array of them"),
    responses(
        (status = 202, description = "Committed", body = Accepted),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token was revoked, or may not ingest (not retried by EventBridge)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an EventBridge event; the field is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn post_events(
    State(state): State<AppState>,
    Auth(actor): Auth,
    body: Result<ApiJson<Value, true>, ApiError>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let ApiJson(body) = body.map_err(|e| refused("events", e))?;
    let signals = eventbridge::from_events(&body, state.desk.now())
        .map_err(|e| refused_field("events", e))?;
    let outcomes = ingest(&state, &actor, "events", signals).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted::from_outcomes(outcomes)),
    ))
}

/// The answer to an alert, shaped like PagerDuty's.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertAccepted {
    /// `success`.
    pub status: &'static str,
    pub message: &'static str,
    pub dedup_key: String,
    pub ticket_id: Option<i64>,
    pub effect: Effect,
}

/// Send an alert from any monitor, shaped like PagerDuty Events API v2: `event_action`
/// trigger / acknowledge / resolve, `dedup_key`, `payload.summary`, `payload.severity`
/// (critical, error, warning, info or SEV1..SEV5), `payload.source`, `payload.custom_details`,
/// `links`. The ingest token goes in a header or, as PagerDuty senders do, in `routing_key`.
#[utoipa::path(
    post,
    path = "/api/v1/alerts",
    tag = "signals",
    request_body(content = Object, description = "A PagerDuty Events API v2 event"),
    responses(
        (status = 202, description = "Committed", body = AlertAccepted),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token was revoked, or may not ingest (not retried by EventBridge)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or wrong; it is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn post_alert(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<(StatusCode, Json<AlertAccepted>), ApiError> {
    let ApiJson(body) = body.map_err(|e| refused("alerts", e))?;
    let actor = match crate::auth::token_in_headers(&headers) {
        Some(_) => crate::auth::authenticate(&state.desk, &headers).await,
        None => match alerts::routing_key(&body) {
            Some(key) => crate::auth::authenticate_secret(&state.desk, key).await,
            None => Err(ApiError::Unauthorized(
                "send the ingest token as Authorization: Bearer, x-api-key or routing_key".into(),
            )),
        },
    }
    .map_err(|e| refused("alerts", e))?;
    if !actor.role.allows(opsdesk_domain::Permission::Ingest) {
        return Err(refused(
            "alerts",
            ApiError::Forbidden(format!("the {} role cannot send alerts", actor.role)),
        ));
    }
    let signal =
        alerts::from_body(&body, state.desk.now()).map_err(|e| refused_field("alerts", e))?;
    let dedup_key = signal.dedup_key.clone();
    let outcome = ingest(&state, &actor, "alerts", vec![signal])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("no outcome for the alert".into()))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(AlertAccepted {
            status: "success",
            message: "Event processed",
            dedup_key,
            ticket_id: outcome.ticket_id,
            effect: outcome.effect,
        }),
    ))
}

/// Receive a Prometheus Alertmanager webhook (`version` 4): each alert is one signal,
/// de-duplicated by its fingerprint. Configure the receiver with
/// `http_config.authorization.credentials` set to an ingest token.
#[utoipa::path(
    post,
    path = "/api/v1/ingest/alertmanager",
    tag = "signals",
    request_body(content = Object, description = "An Alertmanager webhook notification"),
    responses(
        (status = 202, description = "Committed", body = Accepted),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an Alertmanager notification; the field is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn post_alertmanager(
    State(state): State<AppState>,
    Auth(actor): Auth,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    take_webhook(&state, &actor, &alertmanager::Alertmanager, body).await
}

/// A source's webhook: read, refused with the field named, or taken in one transaction.
async fn take_webhook(
    state: &AppState,
    actor: &Actor,
    reader: &dyn source::Source,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let input = reader.name();
    let ApiJson(body) = body.map_err(|e| refused(input, e))?;
    let signals = reader
        .read_webhook(&body, state.desk.now())
        .map_err(|e| refused_field(input, e))?;
    let outcomes = ingest(state, actor, input, signals).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted::from_outcomes(outcomes)),
    ))
}

/// Receive a webhook of a source that takes them: `alertmanager` (Prometheus Alertmanager,
/// also at `/api/v1/ingest/alertmanager`) or `grafana` (Grafana Alerting's webhook contact
/// point). Each alert is one signal, de-duplicated by its fingerprint. Configure the sender
/// with an ingest token as `Authorization: Bearer`.
#[utoipa::path(
    post,
    path = "/api/v1/ingest/{source}",
    tag = "signals",
    params(("source" = String, Path, description = "A source that takes webhooks: `alertmanager` or `grafana`")),
    request_body(content = Object, description = "The source's webhook notification"),
    responses(
        (status = 202, description = "Committed", body = Accepted),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No source of that name takes webhooks", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a notification of that source; the field is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn post_webhook(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(source): Path<String>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let reader = source::named(&source)
        .filter(|s| s.takes_webhooks())
        .ok_or_else(|| {
            let known: Vec<&str> = source::webhook_sources().collect();
            ApiError::NotFound(format!(
                "no source {source:?} takes webhooks; these do: {}",
                known.join(", ")
            ))
        })?;
    take_webhook(&state, &actor, reader, body).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SignalQuery {
    /// Signals of this ticket (`42` or `OPS-42`).
    #[param(pattern = r"^([Oo][Pp][Ss]-)?0*[1-9][0-9]{0,17}$")]
    ticket: Option<String>,
    source: Option<String>,
    dedup_key: Option<String>,
    /// `false` for events opsdesk has no reader for.
    classified: Option<bool>,
    /// Signals older than this id (the `next_before` of the previous page).
    before: Option<i64>,
    /// 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// A page of signals, newest first.
#[derive(Debug, Serialize, ToSchema)]
struct SignalPage {
    signals: Vec<SignalRecord>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<i64>,
}

/// List stored signals, newest first, with their raw payloads and what each did.
#[utoipa::path(
    get,
    path = "/api/v1/signals",
    tag = "signals",
    params(SignalQuery),
    responses(
        (status = 200, description = "A page of signals", body = SignalPage),
        (status = 422, description = "A bad parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_signals(
    State(state): State<AppState>,
    Auth(actor): Auth,
    q: Result<Query<SignalQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SignalPage>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1 to 500"));
    }
    let ticket_id = match &q.ticket {
        Some(t) => Some(
            Ticket::parse_ref(t)
                .ok_or_else(|| ApiError::invalid("ticket", "must be 42 or OPS-42"))?,
        ),
        None => None,
    };
    let filter = SignalFilter {
        ticket_id,
        source: q.source,
        dedup_key: q.dedup_key,
        classified: q.classified,
        before: q.before,
        limit: limit + 1,
    };
    let mut signals = state.desk.signals(&actor, &filter).await?;
    let next_before = if signals.len() as i64 > limit {
        signals.truncate(limit as usize);
        signals.last().map(|s| s.id)
    } else {
        None
    };
    Ok(Json(SignalPage {
        signals,
        next_before,
    }))
}

/// How a ticket is tied to the problems its signals report.
#[derive(Debug, Serialize, ToSchema)]
struct TicketSignals {
    problems: Vec<Correlation>,
    /// The latest signals, newest first (at most 100).
    signals: Vec<SignalRecord>,
}

/// The problems a ticket tracks (occurrences, last seen, flapping) and its latest signals.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/signals",
    tag = "signals",
    params(("id" = String, Path, description = "`42` or `OPS-42`")),
    responses(
        (status = 200, description = "The ticket's problems and signals", body = TicketSignals),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn ticket_signals(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<TicketSignals>, ApiError> {
    let id = super::tickets::ticket_id(&id)?;
    let (correlations, signals) = state.desk.ticket_signals(&actor, id).await?;
    Ok(Json(TicketSignals {
        problems: correlations,
        signals,
    }))
}
