//! Readiness: lenses (Well-Architected custom lens documents) and reviews of workloads.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_core::readiness::{
    ActionItem, ActionItemQuery, AnswerInput, AnswerView, IncidentReview, LensImported,
    LensSummary, Milestone, NewActionItem, NewMilestone, NewReview, NewSchedule, ProposalDecision,
    Review, ReviewQuery, ReviewSummary, Schedule, Upgrade, UpgradeRequest, VerificationNote,
};
use opsdesk_domain::readiness::incident::IncidentReport;
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
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(delete_schedule))
        .routes(routes!(get_incident_review, save_incident_report))
        .routes(routes!(complete_incident_review))
        .routes(routes!(decide_proposal))
        .routes(routes!(create_action_item))
        .routes(routes!(list_action_items))
        .routes(routes!(get_action_item))
        .routes(routes!(verify_action_item))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ScheduleParams {
    /// Schedules of this workload.
    workload: Option<String>,
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

/// Review schedules with their due date and state (staff).
#[utoipa::path(
    get,
    path = "/api/v1/review-schedules",
    tag = "readiness",
    params(ScheduleParams),
    responses((status = 200, description = "The schedules", body = Vec<Schedule>))
)]
async fn list_schedules(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(q): ApiQuery<ScheduleParams>,
) -> Result<Json<Vec<Schedule>>, ApiError> {
    Ok(Json(
        state.desk.schedules(&actor, q.workload.as_deref()).await?,
    ))
}

/// Schedule a workload's readiness reviews (agents and up): every N days after the last
/// review, or N days before a date. When one comes due, opsdesk opens a review and announces
/// `review_due`; past its due date without a milestone, `review_overdue`.
#[utoipa::path(
    post,
    path = "/api/v1/review-schedules",
    tag = "readiness",
    request_body = NewSchedule,
    responses(
        (status = 201, description = "Scheduled", body = Schedule),
        (status = 422, description = "No such workload or lens, or a bad period or date; the field is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_schedule(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<NewSchedule>,
) -> Result<(StatusCode, Json<Schedule>), ApiError> {
    let s = state.desk.create_schedule(&actor, input).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// Remove a review schedule (agents and up).
#[utoipa::path(
    delete,
    path = "/api/v1/review-schedules/{id}",
    tag = "readiness",
    params(("id" = i64, Path, description = "Schedule id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_schedule(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.desk.delete_schedule(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The post-incident review of a review of kind `post_incident`: its incident, report,
/// timeline (drawn from the ticket's records until edited), measured figures and action items
/// (staff).
#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}/incident",
    tag = "readiness",
    params(("id" = i64, Path, description = "Review id")),
    responses(
        (status = 200, description = "The post-incident review", body = IncidentReview),
        (status = 404, description = "No such review, or not a post-incident one", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_incident_review(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<IncidentReview>, ApiError> {
    Ok(Json(state.desk.incident_review(&actor, id).await?))
}

/// Write the report of a post-incident review (agents and up): the whole report each time.
/// Send `timeline` to settle it (an empty one goes back to the drawn timeline). Send
/// `If-Match` with the `report_version` you read: a report changed since is refused with 409.
#[utoipa::path(
    put,
    path = "/api/v1/reviews/{id}/incident",
    tag = "readiness",
    params(
        ("id" = i64, Path, description = "Review id"),
        ("If-Match" = Option<String>, Header, description = "The `report_version` the change is based on"),
    ),
    request_body = IncidentReport,
    responses(
        (status = 200, description = "Saved", body = IncidentReview),
        (status = 404, description = "No such post-incident review", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The report changed since `If-Match`'s version was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field too long, empty or holding control characters, or a change to an approved question; the field is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn save_incident_report(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    ApiJson(report): ApiJson<IncidentReport>,
) -> Result<Json<IncidentReview>, ApiError> {
    // `"v"`, `W/"v"` or `v`; `*` (or nothing) saves whatever the report is now.
    let based_on = match headers.get(header::IF_MATCH) {
        None => None,
        Some(raw) => {
            let s = raw
                .to_str()
                .map_err(|_| ApiError::invalid("If-Match", "must be a report_version"))?
                .trim();
            let s = s.strip_prefix("W/").unwrap_or(s);
            let s = s.trim_matches('"');
            (s != "*").then(|| s.to_owned())
        }
    };
    Ok(Json(
        state
            .desk
            .save_incident_report(&actor, id, report, based_on)
            .await?,
    ))
}

/// Mark a post-incident review complete (agents and up); it needs what happened, the impact,
/// a why or contributing factor and a lesson.
#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/incident/complete",
    tag = "readiness",
    params(("id" = i64, Path, description = "Review id")),
    responses(
        (status = 200, description = "Complete (or complete already)", body = IncidentReview),
        (status = 404, description = "No such post-incident review", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A part the review needs is empty; the field is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn complete_incident_review(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<IncidentReview>, ApiError> {
    Ok(Json(state.desk.complete_incident_review(&actor, id).await?))
}

/// Approve the question the review proposes into a lens (its next version, with a link to the
/// incident) or reject it (admins).
#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/incident/proposal",
    tag = "readiness",
    params(("id" = i64, Path, description = "Review id")),
    request_body = ProposalDecision,
    responses(
        (status = 200, description = "Decided", body = IncidentReview),
        (status = 404, description = "No such post-incident review", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Decided already, or the lens or proposal changed meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No proposal, the built-in lens, no such lens or pillar, or the pillar is full", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn decide_proposal(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(decision): ApiJson<ProposalDecision>,
) -> Result<Json<IncidentReview>, ApiError> {
    Ok(Json(
        state.desk.decide_proposal(&actor, id, decision).await?,
    ))
}

/// Make a finding (a HIGH or MEDIUM question) or a lesson of a review into a task ticket
/// (agents and up). A finding made into an item before gives that item back (200).
#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/action-items",
    tag = "readiness",
    params(("id" = i64, Path, description = "Review id")),
    request_body = NewActionItem,
    responses(
        (status = 201, description = "Made, with its task ticket", body = ActionItem),
        (status = 200, description = "The finding's item made before", body = ActionItem),
        (status = 404, description = "No such review", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a finding, no title for a lesson, or a bad field; the field is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_action_item(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<NewActionItem>,
) -> Result<(StatusCode, Json<ActionItem>), ApiError> {
    let (item, made) = state.desk.create_action_item(&actor, id, input).await?;
    let status = if made {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(item)))
}

/// Action items with their tickets as they are now (staff).
#[utoipa::path(
    get,
    path = "/api/v1/action-items",
    tag = "readiness",
    params(ActionItemQuery),
    responses((status = 200, description = "The items, oldest first", body = Vec<ActionItem>))
)]
async fn list_action_items(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(q): ApiQuery<ActionItemQuery>,
) -> Result<Json<Vec<ActionItem>>, ApiError> {
    Ok(Json(state.desk.action_items(&actor, &q).await?))
}

/// One action item (staff).
#[utoipa::path(
    get,
    path = "/api/v1/action-items/{id}",
    tag = "readiness",
    params(("id" = i64, Path, description = "Action item id")),
    responses(
        (status = 200, description = "The item", body = ActionItem),
        (status = 404, description = "No such item", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_action_item(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ActionItem>, ApiError> {
    Ok(Json(state.desk.action_item(&actor, id).await?))
}

/// Close an action item with a note saying how the fix was checked (agents and up); its ticket
/// is resolved too when still open.
#[utoipa::path(
    post,
    path = "/api/v1/action-items/{id}/verify",
    tag = "readiness",
    params(("id" = i64, Path, description = "Action item id")),
    request_body = VerificationNote,
    responses(
        (status = 200, description = "Verified", body = ActionItem),
        (status = 404, description = "No such item", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Verified already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An empty or too long note", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn verify_action_item(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<VerificationNote>,
) -> Result<Json<ActionItem>, ApiError> {
    Ok(Json(
        state.desk.verify_action_item(&actor, id, input).await?,
    ))
}
