//! Workloads (what signals are matched against) and maintenance windows.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use opsdesk_core::workloads::NewWindow;
use opsdesk_domain::{NewWorkload, Workload};
use opsdesk_store::MaintenanceWindow;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::params::ApiPath;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workloads, create_workload))
        .routes(routes!(list_workload_names))
        .routes(routes!(get_workload, put_workload, delete_workload))
        .routes(routes!(list_maintenance, plan_maintenance))
        .routes(routes!(cancel_maintenance))
}

/// List workloads by name, with their accounts, regions and resources (staff).
#[utoipa::path(
    get,
    path = "/api/v1/workloads",
    tag = "workloads",
    responses((status = 200, description = "The workloads", body = Vec<Workload>))
)]
async fn list_workloads(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<Workload>>, ApiError> {
    Ok(Json(state.desk.workloads(&actor).await?))
}

/// The workload names a new ticket may give, by name: what the new request form offers.
/// Anyone who may raise tickets reads them; the workloads themselves are for staff.
#[utoipa::path(
    get,
    path = "/api/v1/workload-names",
    tag = "workloads",
    responses((status = 200, description = "The names", body = Vec<String>))
)]
async fn list_workload_names(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(state.desk.workload_names(&actor).await?))
}

/// Create a workload (admin). Signals are matched to it by account, region, resource ARN
/// pattern and tags; its environment decides whether production is affected.
#[utoipa::path(
    post,
    path = "/api/v1/workloads",
    tag = "workloads",
    request_body = NewWorkload,
    responses(
        (status = 201, description = "Created", body = Workload),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong; it is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_workload(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<NewWorkload>,
) -> Result<(StatusCode, Json<Workload>), ApiError> {
    let name = input.name.trim().to_owned();
    if state.desk.workload(&actor, &name).await.is_ok() {
        return Err(ApiError::Conflict(format!(
            "a workload named {name} exists; PUT /api/v1/workloads/{name} replaces it"
        )));
    }
    let saved = state.desk.save_workload(&actor, input).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// One workload.
#[utoipa::path(
    get,
    path = "/api/v1/workloads/{name}",
    tag = "workloads",
    params(("name" = String, Path, description = "Workload name")),
    responses(
        (status = 200, description = "The workload", body = Workload),
        (status = 404, description = "No such workload", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_workload(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> Result<Json<Workload>, ApiError> {
    Ok(Json(state.desk.workload(&actor, &name).await?))
}

/// Create or replace a workload by name (admin).
#[utoipa::path(
    put,
    path = "/api/v1/workloads/{name}",
    tag = "workloads",
    params(("name" = String, Path, description = "Workload name; must equal the body's name")),
    request_body = NewWorkload,
    responses(
        (status = 200, description = "Saved", body = Workload),
        (status = 422, description = "A field is wrong; it is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_workload(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<NewWorkload>,
) -> Result<Json<Workload>, ApiError> {
    if input.name.trim() != name {
        return Err(ApiError::invalid(
            "name",
            format!("must be {name}, as in the URL"),
        ));
    }
    Ok(Json(state.desk.save_workload(&actor, input).await?))
}

/// Delete a workload (admin). Tickets keep its name.
#[utoipa::path(
    delete,
    path = "/api/v1/workloads/{name}",
    tag = "workloads",
    params(("name" = String, Path, description = "Workload name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such workload", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_workload(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.desk.delete_workload(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Period {
    /// In the years 1970 to 9999. Default: now.
    from: Option<DateTime<Utc>>,
    /// In the years 1970 to 9999. Default: 30 days after `from`.
    to: Option<DateTime<Utc>>,
}

/// Maintenance windows overlapping a period: AWS Health scheduled changes (with their
/// tickets) and windows planned for workloads.
#[utoipa::path(
    get,
    path = "/api/v1/maintenance",
    tag = "workloads",
    params(Period),
    responses(
        (status = 200, description = "The windows, by start", body = Vec<MaintenanceWindow>),
        (status = 422, description = "A bad period", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_maintenance(
    State(state): State<AppState>,
    Auth(actor): Auth,
    q: Result<Query<Period>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<MaintenanceWindow>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let from = q.from.unwrap_or_else(|| state.desk.now());
    let to = match q.to {
        Some(to) => to,
        None => from
            .checked_add_signed(chrono::Duration::days(30))
            .ok_or_else(|| ApiError::invalid("from", "is too late to end 30 days after it"))?,
    };
    Ok(Json(state.desk.maintenance(&actor, from, to).await?))
}

/// Plan a maintenance window for a workload: its signals inside the window are recorded as
/// expected and open no ticket; a resolve still resolves.
#[utoipa::path(
    post,
    path = "/api/v1/maintenance",
    tag = "workloads",
    request_body = NewWindow,
    responses(
        (status = 201, description = "Planned", body = MaintenanceWindow),
        (status = 422, description = "A field is wrong; it is named", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn plan_maintenance(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<NewWindow>,
) -> Result<(StatusCode, Json<MaintenanceWindow>), ApiError> {
    let w = state.desk.plan_maintenance(&actor, input).await?;
    Ok((StatusCode::CREATED, Json(w)))
}

/// Cancel a planned maintenance window (AWS Health windows cannot be cancelled here).
#[utoipa::path(
    delete,
    path = "/api/v1/maintenance/{id}",
    tag = "workloads",
    params(("id" = i64, Path, description = "Window id")),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 404, description = "No such planned window", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn cancel_maintenance(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.desk.cancel_maintenance(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
