//! AWS accounts with their support plan, the plan table and plan advice.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use opsdesk_domain::support::{source, Source};
use opsdesk_domain::{Advice, AwsAccount, CaseSeverity, SupportPlan, Target};
use opsdesk_store::AwsAccountRecord;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, put_account, delete_account))
        .routes(routes!(support_plans))
        .routes(routes!(support_plan_advice))
}

/// List AWS accounts: those of the configuration file first (`origin` `config`), then those
/// added through the API, by id.
#[utoipa::path(
    get,
    path = "/api/v1/aws-accounts",
    tag = "aws",
    responses((status = 200, description = "The accounts", body = Vec<AwsAccountRecord>))
)]
async fn list_accounts(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<AwsAccountRecord>>, ApiError> {
    Ok(Json(state.desk.aws_accounts(&actor).await?))
}

/// Add an AWS account with its support plan (admin).
#[utoipa::path(
    post,
    path = "/api/v1/aws-accounts",
    tag = "aws",
    request_body = AwsAccount,
    responses(
        (status = 201, description = "Created", body = AwsAccountRecord),
        (status = 409, description = "The id is taken, or defined in the configuration file", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong; it is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_account(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<AwsAccount>,
) -> Result<(StatusCode, Json<AwsAccountRecord>), ApiError> {
    let id = input.id.trim().to_owned();
    if let Ok(existing) = state.desk.aws_account(&actor, &id).await {
        if existing.origin != "config" {
            return Err(ApiError::Conflict(format!(
                "AWS account {id} exists; PUT /api/v1/aws-accounts/{id} replaces it"
            )));
        }
    }
    let saved = state.desk.save_aws_account(&actor, input).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// One AWS account.
#[utoipa::path(
    get,
    path = "/api/v1/aws-accounts/{id}",
    tag = "aws",
    params(("id" = String, Path, description = "The 12-digit account id")),
    responses(
        (status = 200, description = "The account", body = AwsAccountRecord),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_account(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<AwsAccountRecord>, ApiError> {
    Ok(Json(state.desk.aws_account(&actor, &id).await?))
}

/// Create or replace an AWS account by id (admin). Accounts of the configuration file are
/// refused with 409: change them there.
#[utoipa::path(
    put,
    path = "/api/v1/aws-accounts/{id}",
    tag = "aws",
    params(("id" = String, Path, description = "The 12-digit account id; must equal the body's id")),
    request_body = AwsAccount,
    responses(
        (status = 200, description = "Saved", body = AwsAccountRecord),
        (status = 409, description = "Defined in the configuration file", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong; it is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_account(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AwsAccount>,
) -> Result<Json<AwsAccountRecord>, ApiError> {
    if input.id.trim() != id {
        return Err(ApiError::invalid(
            "id",
            format!("must be {id}, as in the URL"),
        ));
    }
    Ok(Json(state.desk.save_aws_account(&actor, input).await?))
}

/// Delete an AWS account added through the API (admin).
#[utoipa::path(
    delete,
    path = "/api/v1/aws-accounts/{id}",
    tag = "aws",
    params(("id" = String, Path, description = "The 12-digit account id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Defined in the configuration file", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_account(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.desk.delete_aws_account(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The AWS Support plans as opsdesk applies them, with the pages they are taken from.
#[derive(Debug, Serialize, ToSchema)]
struct PlanTable {
    plans: Vec<PlanRow>,
    sources: Vec<Source>,
}

/// What one support plan lets an account do.
#[derive(Debug, Serialize, ToSchema)]
struct PlanRow {
    plan: SupportPlan,
    /// The plan's name as AWS writes it.
    label: &'static str,
    /// Whether technical cases can be opened at all.
    allows_cases: bool,
    /// Whether the AWS Support API is available, so opsdesk can open cases itself.
    has_api: bool,
    case_access: &'static str,
    /// The highest case severity the table assumes when AWS does not say (AWS's answer for
    /// an account, DescribeSeverityLevels, wins); none when the plan has no technical cases.
    max_severity: Option<CaseSeverity>,
    /// The first-response target of every case severity, lowest first.
    first_response: Vec<FirstResponse>,
    /// The published minimum monthly charge, in US dollars.
    minimum_monthly_usd: u32,
    /// Whether an account outside AWS GovCloud (US) can hold the plan today.
    available_today: bool,
    /// Whether an account in AWS GovCloud (US) can hold the plan today.
    available_today_in_govcloud: bool,
    /// The first day an account outside AWS GovCloud (US) can no longer hold the plan, if it ends.
    ends_on: Option<chrono::NaiveDate>,
    /// The plan AWS moves its accounts to or offers them when it ends.
    successor: Option<SupportPlan>,
    /// Where AWS's own pages disagree about the plan, and what opsdesk assumes.
    disputed: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
struct FirstResponse {
    severity: CaseSeverity,
    /// The severity's name in the AWS Support Center.
    label: &'static str,
    /// None when the plan does not allow this severity.
    target: Option<Target>,
}

/// The support plan table: for each plan whether it allows technical cases and the AWS
/// Support API, its highest case severity, the first-response target of each severity, its
/// minimum price and the days it can be held.
#[utoipa::path(
    get,
    path = "/api/v1/support-plans",
    tag = "aws",
    responses((status = 200, description = "The plans, lowest first", body = PlanTable))
)]
async fn support_plans(State(state): State<AppState>, Auth(_actor): Auth) -> Json<PlanTable> {
    let today = state.desk.now().date_naive();
    let plans = SupportPlan::ALL
        .iter()
        .map(|&plan| PlanRow {
            plan,
            label: plan.label(),
            allows_cases: plan.allows_cases(),
            has_api: plan.has_api(),
            case_access: plan.case_access(),
            max_severity: plan.max_severity(),
            first_response: CaseSeverity::ALL
                .iter()
                .map(|&severity| FirstResponse {
                    severity,
                    label: severity.label(),
                    target: plan.first_response(severity),
                })
                .collect(),
            minimum_monthly_usd: plan.minimum_monthly_usd(),
            available_today: plan.available_on(today, false),
            available_today_in_govcloud: plan.available_on(today, true),
            ends_on: plan.ends_on(false),
            successor: plan.successor().map(|(p, _)| p),
            disputed: plan.disputed(),
        })
        .collect();
    Json(PlanTable {
        plans,
        sources: source().to_vec(),
    })
}

/// Which support plan each AWS account's workloads call for today, and why: among the plans
/// that exist today and for the next 90 days, with a notice for accounts on plans that end
/// and what AWS's own answer (DescribeSeverityLevels) says when it does not fit the plan.
#[utoipa::path(
    get,
    path = "/api/v1/support-plans/advice",
    tag = "aws",
    responses((status = 200, description = "One advice per account", body = Vec<Advice>))
)]
async fn support_plan_advice(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<Advice>>, ApiError> {
    Ok(Json(state.desk.support_plan_advice(&actor).await?))
}
