//! Readiness: lenses (Well-Architected custom lens documents) and reviews of workloads.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_core::readiness::{
    AnswerInput, AnswerView, LensImported, LensSummary, Milestone, NewMilestone, NewReview, Review,
    ReviewQuery, ReviewSummary, Upgrade, UpgradeRequest,
};
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
        .routes(routes!(list_lenses, import_lens))
        .routes(routes!(get_lens))
        .routes(routes!(list_reviews, start_review))
        .routes(routes!(get_review))
        .routes(routes!(answer_question))
        .routes(routes!(create_milestone))
        .routes(routes!(get_milestone))
        .routes(routes!(upgrade_review))
}

/// A lens document in the Well-Architected custom lens format (`schemaVersion` `2021-11-01`);
/// see the format specification for pillars, questions, choices and risk rules.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LensJson {
    #[schema(example = "2021-11-01")]
    pub schema_version: String,
    pub name: String,
    pub description: String,
    pub pillars: Vec<serde_json::Value>,
}

/// A lens with its versions, or (with `format=lens-json`) its exportable document.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LensOrDocument {
    Lens(LensSummary),
    // Only in the document: that answer is the exported text itself, written as is.
    #[allow(dead_code)]
    Document(LensJson),
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
enum LensFormat {
    /// The lens with its versions.
    #[default]
    Summary,
    /// The document in the custom lens format, ready to import elsewhere.
    LensJson,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LensParams {
    /// `summary` (default) or `lens-json`.
    #[serde(default)]
    #[param(inline)]
    format: LensFormat,
    /// With `lens-json`: this version (default the newest).
    #[param(minimum = 1)]
    version: Option<i64>,
}

/// Every lens, the built-in one included, with its versions (staff).
#[utoipa::path(
    get,
    path = "/api/v1/lenses",
    tag = "readiness",
    responses((status = 200, description = "The lenses, by name", body = Vec<LensSummary>))
)]
async fn list_lenses(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<LensSummary>>, ApiError> {
    Ok(Json(state.desk.list_lenses(&actor).await?))
}

/// Import a lens (admin). The body is the lens document itself. A lens of a new name is a new
/// lens; the same name with other content is its next version; the same content again changes
/// nothing (200). Every problem of the document is reported, `field` naming the first one's
/// JSON path.
#[utoipa::path(
    post,
    path = "/api/v1/lenses",
    tag = "readiness",
    request_body = LensJson,
    responses(
        (status = 201, description = "Imported: a new lens or a new version", body = LensImported),
        (status = 200, description = "This version was imported before", body = LensImported),
        (status = 422, description = "The document breaks the format; `field` is a JSON path", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn import_lens(
    State(state): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<LensImported>), ApiError> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v.split(';').next().unwrap_or_default().trim();
            mime.eq_ignore_ascii_case("application/json")
                || mime.to_ascii_lowercase().ends_with("+json")
        })
        .unwrap_or(false);
    if !json_type {
        return Err(ApiError::UnsupportedMediaType(
            "send the lens as Content-Type: application/json".into(),
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::Malformed("the body is not UTF-8 text".into()))?;
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        if e.is_syntax() || e.is_eof() {
            return Err(ApiError::Malformed(format!("the body is not JSON: {e}")));
        }
    }
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::invalid("", "the body must be a JSON object"));
    }
    let imported = state.desk.import_lens(&actor, text).await?;
    let status = if imported.new_version {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(imported)))
}

/// One lens with its versions, or its exportable document with `format=lens-json` (staff).
#[utoipa::path(
    get,
    path = "/api/v1/lenses/{id}",
    tag = "readiness",
    params(("id" = String, Path, description = "Lens id"), LensParams),
    responses(
        (status = 200, description = "The lens, or its document", body = LensOrDocument),
        (status = 404, description = "No such lens or version", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_lens(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LensParams>,
) -> Result<Response, ApiError> {
    match q.format {
        LensFormat::Summary => {
            let lens = state.desk.get_lens(&actor, &id).await?;
            Ok(Json(LensOrDocument::Lens(lens)).into_response())
        }
        LensFormat::LensJson => {
            let doc = state.desk.export_lens(&actor, &id, q.version).await?;
            Ok(([(header::CONTENT_TYPE, "application/json")], doc).into_response())
        }
    }
}

/// Reviews, newest first (staff).
#[utoipa::path(
    get,
    path = "/api/v1/reviews",
    tag = "readiness",
    params(ReviewQuery),
    responses((status = 200, description = "The reviews", body = Vec<ReviewSummary>))
)]
async fn list_reviews(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(query): ApiQuery<ReviewQuery>,
) -> Result<Json<Vec<ReviewSummary>>, ApiError> {
    Ok(Json(state.desk.list_reviews(&actor, &query).await?))
}

/// Start a review of a workload on the newest version of a lens (agents and up).
#[utoipa::path(
    post,
    path = "/api/v1/reviews",
    tag = "readiness",
    request_body = NewReview,
    responses(
        (status = 201, description = "Started", body = Review),
        (status = 422, description = "No such workload or lens; the field is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn start_review(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<NewReview>,
) -> Result<(StatusCode, Json<Review>), ApiError> {
    let review = state.desk.start_review(&actor, input).await?;
    Ok((StatusCode::CREATED, Json(review)))
}

/// A review: every question with its answer, risk and improvement plans, and the risk counts
/// per pillar and overall (staff).
#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}",
    tag = "readiness",
    params(("id" = i64, Path, description = "Review id")),
    responses(
        (status = 200, description = "The review", body = Review),
        (status = 404, description = "No such review", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_review(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Review>, ApiError> {
    Ok(Json(state.desk.review(&actor, id).await?))
}

/// Answer one question (agents and up): the answer comes back with its risk. Unknown choice
/// ids are refused, all named.
#[utoipa::path(
    put,
    path = "/api/v1/reviews/{id}/answers/{question_id}",
    tag = "readiness",
    params(
        ("id" = i64, Path, description = "Review id"),
        ("question_id" = String, Path, description = "Question id in the review's lens"),
    ),
    request_body = AnswerInput,
    responses(
        (status = 200, description = "Saved", body = AnswerView),
        (status = 404, description = "No such review or question", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The review moved to another lens version meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown choices, or a bad note or reason; the field is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn answer_question(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath((id, question_id)): ApiPath<(i64, String)>,
    ApiJson(input): ApiJson<AnswerInput>,
) -> Result<Json<AnswerView>, ApiError> {
    Ok(Json(
        state
            .desk
            .answer_question(&actor, id, &question_id, input)
            .await?,
    ))
}

/// Freeze the review's answers and risks as a milestone (agents and up).
#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/milestones",
    tag = "readiness",
    params(("id" = i64, Path, description = "Review id")),
    request_body = NewMilestone,
    responses(
        (status = 201, description = "Frozen", body = Milestone),
        (status = 404, description = "No such review", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The review has a milestone of this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad name", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_milestone(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<NewMilestone>,
) -> Result<(StatusCode, Json<Milestone>), ApiError> {
    let m = state.desk.create_milestone(&actor, id, input).await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// One milestone of a review, as it was frozen (staff).
#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}/milestones/{number}",
    tag = "readiness",
    params(
        ("id" = i64, Path, description = "Review id"),
        ("number" = i64, Path, description = "Milestone number, from 1"),
    ),
    responses(
        (status = 200, description = "The milestone", body = Milestone),
        (status = 404, description = "No such review or milestone", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_milestone(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath((id, number)): ApiPath<(i64, i64)>,
) -> Result<Json<Milestone>, ApiError> {
    Ok(Json(state.desk.milestone(&actor, id, number).await?))
}

/// Move a review to a newer version of its lens (agents and up): answers are carried over
/// where question and choice ids match; what could not be carried is listed.
#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/upgrade",
    tag = "readiness",
    params(("id" = i64, Path, description = "Review id")),
    request_body = UpgradeRequest,
    responses(
        (status = 200, description = "Upgraded (or already on that version)", body = Upgrade),
        (status = 404, description = "No such review", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The review moved to another lens version meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such version, or not newer than the review's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn upgrade_review(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<UpgradeRequest>,
) -> Result<Json<Upgrade>, ApiError> {
    Ok(Json(state.desk.upgrade_review(&actor, id, input).await?))
}
