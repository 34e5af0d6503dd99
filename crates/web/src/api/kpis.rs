//! KPIs: their latest values and trends, their series, and the custom ones teams define.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use opsdesk_core::kpis::{KpiView, Series, StoredKpi};
use opsdesk_domain::kpi::{Dimension, KpiInfo, KpiSpec, Span};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::Problem;
use crate::json::ApiJson;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_kpis, define_kpi))
        .routes(routes!(list_definitions))
        .routes(routes!(get_kpi, delete_kpi))
        .routes(routes!(kpi_series))
        .routes(routes!(trend_report))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| {
        // "Failed to deserialize query string: step: ..." names the parameter first.
        let text = e.body_text();
        let field = text
            .split(": ")
            .nth(1)
            .filter(|f| f.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .unwrap_or("query")
            .to_owned();
        ApiError::invalid(field, text)
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Keep only the breakdowns by this dimension (`team`, `workload`, `severity`, ...).
    by: Option<Dimension>,
}

#[derive(Debug, Serialize, ToSchema)]
struct KpiList {
    kpis: Vec<KpiView>,
}

/// Every KPI with its latest value, target, status (`ok`, `warning`, `breach`, `no_data`),
/// trend against one window earlier, and its breakdowns. Values come from the last scheduled
/// evaluation, so this answers in milliseconds however many tickets there are.
#[utoipa::path(
    get,
    path = "/api/v1/kpis",
    tag = "kpis",
    params(ListParams),
    responses(
        (status = 200, description = "The KPIs", body = KpiList),
        (status = 403, description = "Requesters see only their own tickets, not KPIs", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`by` is not a dimension", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_kpis(
    State(state): State<AppState>,
    Auth(actor): Auth,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<KpiList>, ApiError> {
    let params = query(params)?;
    Ok(Json(KpiList {
        kpis: state.desk.kpis(&actor, params.by).await?,
    }))
}

/// One KPI with its latest value and breakdowns.
#[utoipa::path(
    get,
    path = "/api/v1/kpis/{name}",
    tag = "kpis",
    params(("name" = String, Path, description = "KPI name, e.g. mtta")),
    responses(
        (status = 200, description = "The KPI", body = KpiView),
        (status = 404, description = "No such KPI", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_kpi(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> Result<Json<KpiView>, ApiError> {
    Ok(Json(state.desk.kpi(&actor, &name).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct SeriesParams {
    /// RFC 3339, in the years 1970 to 9999; seven days before `to` when left out.
    from: Option<DateTime<Utc>>,
    /// RFC 3339, in the years 1970 to 9999; now when left out.
    to: Option<DateTime<Utc>>,
    /// The length of one step (`5m`, `1h`, `1d`); about 200 steps when left out.
    #[param(value_type = Option<String>)]
    step: Option<Span>,
    /// A breakdown as `dimension=value` (`team=ops`); overall when left out.
    scope: Option<String>,
}

/// A KPI's stored values as a series: one value per step, the one in force at the step's end.
#[utoipa::path(
    get,
    path = "/api/v1/kpis/{name}/series",
    tag = "kpis",
    params(("name" = String, Path, description = "KPI name"), SeriesParams),
    responses(
        (status = 200, description = "The series", body = Series),
        (status = 404, description = "No such KPI", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`from`, `to` (outside the years 1970 to 9999, or in the wrong order), `step` or `scope` is wrong; `field` names it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn kpi_series(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Json<Series>, ApiError> {
    let p = query(params)?;
    let given = |field: &str, t: Option<DateTime<Utc>>| {
        t.map(|t| opsdesk_domain::validation::check_time(field, t))
            .transpose()
            .map_err(|e| ApiError::invalid(e.field, e.message))
    };
    let (from, to) = (given("from", p.from)?, given("to", p.to)?);
    let to = to.unwrap_or_else(|| state.desk.now());
    let from = match from {
        Some(from) => from,
        None => to
            .checked_sub_signed(Duration::days(7))
            .ok_or_else(|| ApiError::invalid("to", "is too early to start a week before it"))?,
    };
    let step = match p.step {
        Some(s) => s.duration(),
        None => Duration::minutes(((to - from).num_minutes() / 200).max(1)),
    };
    Ok(Json(
        state
            .desk
            .kpi_series(
                &actor,
                &name,
                p.scope.as_deref().unwrap_or(""),
                from,
                to,
                step,
            )
            .await?,
    ))
}

/// Define or redefine a custom KPI (admin): a filter over tickets or signals, an aggregate
/// (`count`, `rate`, `mean`, `p50`, `p90`, `ratio`), a window, thresholds and breakdowns.
/// It is evaluated from the next scheduled run on.
#[utoipa::path(
    post,
    path = "/api/v1/kpis",
    tag = "kpis",
    request_body = KpiSpec,
    responses(
        (status = 201, description = "Saved", body = KpiInfo),
        (status = 409, description = "The name belongs to a KPI of the configuration file", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong (unknown field, aggregate or timestamp, empty window, thresholds out of order); `field` names it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn define_kpi(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(spec): ApiJson<KpiSpec>,
) -> Result<(StatusCode, Json<KpiInfo>), ApiError> {
    let kpi = state.desk.save_kpi(&actor, spec).await?;
    Ok((StatusCode::CREATED, Json(kpi.info)))
}

#[derive(Debug, Serialize, ToSchema)]
struct Definitions {
    definitions: Vec<StoredKpi>,
}

/// The custom KPIs defined through the API, as they were sent.
#[utoipa::path(
    get,
    path = "/api/v1/kpi-definitions",
    tag = "kpis",
    responses((status = 200, description = "The definitions", body = Definitions))
)]
async fn list_definitions(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Definitions>, ApiError> {
    Ok(Json(Definitions {
        definitions: state.desk.stored_kpis(&actor).await?,
    }))
}

/// Delete a custom KPI defined through the API, with its series (admin).
#[utoipa::path(
    delete,
    path = "/api/v1/kpis/{name}",
    tag = "kpis",
    params(("name" = String, Path, description = "KPI name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such KPI", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Built in or defined in the configuration file", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_kpi(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.desk.delete_kpi(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    /// `last-week` (the default), `last-month`, or `FROM..TO` (dates `YYYY-MM-DD`, both
    /// included, or RFC 3339 times).
    period: Option<String>,
    /// `json` (the default), `md` or `csv`.
    format: Option<String>,
}

/// The trend report of a period against the period before: volume by kind, severity, source,
/// workload and team; MTTA, MTTR, SLA compliance and reopen rate; recurring problems and
/// signal types; time spent in each status; reopened tickets and what was said; Trusted
/// Advisor savings.
#[utoipa::path(
    get,
    path = "/api/v1/reports/trends",
    tag = "kpis",
    params(ReportParams),
    responses(
        (status = 200, description = "The report (JSON, or text/markdown or text/csv as asked)", body = opsdesk_core::reports::TrendReport),
        (status = 422, description = "`period` or `format` cannot be read", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn trend_report(
    State(state): State<AppState>,
    Auth(actor): Auth,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let p = query(params)?;
    let period = opsdesk_domain::report::Period::parse(
        p.period.as_deref().unwrap_or("last-week"),
        state.desk.now(),
    )
    .map_err(|e| ApiError::invalid(e.field, e.message))?;
    let format = p.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "md" | "csv") {
        return Err(ApiError::invalid("format", "use json, md or csv"));
    }
    let report = state.desk.trend_report(&actor, period).await?;
    let text = |mime: &'static str, body: String| {
        ([(axum::http::header::CONTENT_TYPE, mime)], body).into_response()
    };
    Ok(match format {
        "md" => text("text/markdown; charset=utf-8", report.markdown()),
        "csv" => text(
            "text/csv; charset=utf-8",
            report
                .csv()
                .map_err(|e| ApiError::invalid("format", e.to_string()))?,
        ),
        _ => Json(report).into_response(),
    })
}
