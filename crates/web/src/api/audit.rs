use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use opsdesk_core::VerifyError;
use opsdesk_domain::audit::{Anchor, AnchorError, AuditRecord};
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct VerifyParams {
    /// `SEQ:HASH`: also check that entry SEQ still has HASH, a head saved earlier (as
    /// `anchor` of an earlier answer) outside the database.
    #[param(pattern = "^[1-9][0-9]{0,17}:[0-9a-fA-F]{64}$")]
    anchor: Option<String>,
}

/// The outcome of walking the chain.
#[derive(Debug, Serialize, ToSchema)]
struct Verification {
    intact: bool,
    /// Entries checked before the end or the first bad one.
    entries: i64,
    /// The last entry's seq, when intact.
    #[serde(skip_serializing_if = "Option::is_none")]
    head_seq: Option<i64>,
    /// The last entry's hash, when intact: keep it elsewhere to anchor the chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    head_hash: Option<String>,
    /// The head as `SEQ:HASH`, when intact: save it outside the database and pass it as
    /// `anchor` later.
    #[serde(skip_serializing_if = "Option::is_none")]
    anchor: Option<String>,
    /// The first bad entry, when broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_bad_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Walk the whole hash chain and report whether it is intact (admin): every entry's seq, its
/// link to the one before and its stored text against its hash, and with `anchor` that an
/// entry still has the hash saved earlier outside the database.
#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    params(VerifyParams),
    responses(
        (status = 200, description = "The outcome; `intact` says whether the chain holds", body = Verification),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`anchor` is not SEQ:HASH", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn audit_verify(
    State(state): State<AppState>,
    Auth(_actor): Auth,
    params: Result<Query<VerifyParams>, QueryRejection>,
) -> Result<Json<Verification>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let anchors: Vec<Anchor> = match params.anchor.as_deref() {
        Some(text) => vec![text
            .parse()
            .map_err(|e: AnchorError| ApiError::invalid("anchor", e.to_string()))?],
        None => Vec::new(),
    };
    Ok(Json(
        match state.desk.verify_audit_anchored(&anchors).await {
            Ok(s) => Verification {
                intact: true,
                entries: s.entries,
                head_seq: Some(s.head_seq),
                anchor: Some(s.head_anchor().to_string()),
                head_hash: Some(s.head_hash),
                first_bad_seq: None,
                detail: None,
            },
            Err(VerifyError::Broken(e)) => Verification {
                intact: false,
                entries: e.seq() - 1,
                head_seq: None,
                head_hash: None,
                anchor: None,
                first_bad_seq: Some(e.seq()),
                detail: Some(e.to_string()),
            },
            Err(VerifyError::Failed(e)) => return Err(e.into()),
        },
    ))
}
