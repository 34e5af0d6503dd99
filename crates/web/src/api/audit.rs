use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use opsdesk_core::VerifyError;
use opsdesk_domain::audit::AuditRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::Problem;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(audit_entries))
        .routes(routes!(audit_verify))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Entries with a seq above this; 0 (the default) starts at the beginning.
    after: Option<i64>,
    /// 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// A page of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
struct AuditPage {
    items: Vec<AuditRecord>,
    /// Pass as `after` for the next page; absent when this page is the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<i64>,
}

/// The whole audit trail in seq order: tickets, tokens, everything (admin).
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn audit_entries(
    State(state): State<AppState>,
    Auth(actor): Auth,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let after = params.after.unwrap_or(0);
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let items = state.desk.audit_page(&actor, after, limit).await?;
    let next_after = match items.last() {
        Some(last) if items.len() as i64 == limit => Some(last.seq),
        _ => None,
    };
    Ok(Json(AuditPage { items, next_after }))
}

/// The outcome of walking the chain.
#[derive(Debug, Serialize, ToSchema)]
struct Verification {
    intact: bool,
    /// Entries checked before the end or the first bad one.
    entries: i64,
    /// The last entry's hash, when intact: keep it elsewhere to anchor the chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    head_hash: Option<String>,
    /// The first bad entry, when broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_bad_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Walk the whole hash chain and report whether it is intact (admin).
#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    responses(
        (status = 200, description = "The outcome; `intact` says whether the chain holds", body = Verification),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn audit_verify(
    State(state): State<AppState>,
    Auth(_actor): Auth,
) -> Result<Json<Verification>, ApiError> {
    Ok(Json(match state.desk.verify_audit().await {
        Ok(s) => Verification {
            intact: true,
            entries: s.entries,
            head_hash: Some(s.head_hash),
            first_bad_seq: None,
            detail: None,
        },
        Err(VerifyError::Broken(e)) => Verification {
            intact: false,
            entries: e.seq() - 1,
            head_hash: None,
            first_bad_seq: Some(e.seq()),
            detail: Some(e.to_string()),
        },
        Err(VerifyError::Failed(e)) => return Err(e.into()),
    }))
}
