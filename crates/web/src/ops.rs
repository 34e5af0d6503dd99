//! Health, readiness and Prometheus metrics.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide metrics recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new().set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".into()),
            LATENCY_BUCKETS,
        );
        match builder {
            Ok(builder) => match builder.install_recorder() {
                Ok(handle) => handle,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "metrics buckets refused");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// How long /readyz waits for the database: well inside a probe's timeout, so that a database
/// that is down answers 503 rather than a probe timing out.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The process can reach its database.
async fn readyz(State(state): State<AppState>) -> Response {
    let unready = |why: String| {
        tracing::warn!(error = %why, "readiness check failed");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "database unreachable\n",
        )
            .into_response()
    };
    match tokio::time::timeout(READY_WAIT, state.desk.db().ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => unready(e.to_string()),
        Err(_) => unready(format!("no answer within {} s", READY_WAIT.as_secs())),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let handle = metrics_handle();
    match state.desk.db().count_by_status().await {
        Ok(counts) => {
            for status in opsdesk_domain::Status::ALL {
                let n = counts
                    .iter()
                    .find(|(s, _)| s == status)
                    .map(|(_, n)| *n)
                    .unwrap_or(0);
                metrics::gauge!("opsdesk_tickets", "status" => status.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count tickets for metrics"),
    }
    let mut text = handle.render();
    match lease_metrics(&state).await {
        Ok(leases) => text.push_str(&leases),
        Err(e) => tracing::warn!(error = %e, "could not read job leases for metrics"),
    }
    match kpi_metrics(&state.desk).await {
        Ok(kpis) => text.push_str(&kpis),
        Err(e) => tracing::warn!(error = %e, "could not read KPI values for metrics"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Which node holds which job that runs on one node at a time: `opsdesk_job_lease{job, node}`
/// is 1 for each lease that has not ended, and `opsdesk_job_held{job}` is 1 for the jobs this
/// node holds (`opsdesk_node{node}` names it).
async fn lease_metrics(state: &AppState) -> opsdesk_core::Result<String> {
    use std::fmt::Write;
    let leases = state.desk.db().job_leases().await?;
    let now = state.desk.now();
    let node = label(&state.node);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP opsdesk_node This node's name in job leases.\n# TYPE opsdesk_node gauge\nopsdesk_node{{node=\"{node}\"}} 1"
    );
    let _ = writeln!(
        out,
        "# HELP opsdesk_job_lease 1 for the node holding a job that runs on one node at a time.\n# TYPE opsdesk_job_lease gauge"
    );
    for l in leases.iter().filter(|l| l.expires_at > now) {
        let _ = writeln!(
            out,
            "opsdesk_job_lease{{job=\"{}\",node=\"{}\"}} 1",
            label(&l.job),
            label(&l.holder)
        );
    }
    let _ = writeln!(
        out,
        "# HELP opsdesk_job_held 1 for each job this node holds.\n# TYPE opsdesk_job_held gauge"
    );
    for l in leases
        .iter()
        .filter(|l| l.expires_at > now && *l.holder == *state.node)
    {
        let _ = writeln!(out, "opsdesk_job_held{{job=\"{}\"}} 1", label(&l.job));
    }
    Ok(out)
}

/// A label value as the Prometheus text format writes it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The latest KPI values, their status and thresholds in the Prometheus text format: labels
/// `kpi`, `unit`, and `by` / `scope` for the breakdown (`all` / `all` overall).
async fn kpi_metrics(desk: &opsdesk_core::Desk) -> opsdesk_core::Result<String> {
    use std::fmt::Write;
    let catalog = desk.kpi_catalog().await?;
    let states = desk.db().kpi_states().await?;
    let mut values = String::new();
    let mut statuses = String::new();
    let mut thresholds = String::new();
    for kpi in &catalog {
        let info = &kpi.info;
        let base = format!("kpi=\"{}\",unit=\"{}\"", label(&info.name), info.unit);
        if let Some(t) = &info.thresholds {
            for (metric, v) in [
                ("target", t.target),
                ("warning", t.warning),
                ("breach", t.breach),
            ] {
                let _ = writeln!(thresholds, "opsdesk_kpi_{metric}{{{base}}} {v}");
            }
        }
        for s in states.iter().filter(|s| s.name == info.name) {
            let Some(scope) = opsdesk_domain::kpi::Scope::from_key(&s.scope) else {
                continue;
            };
            let (by, value) = match scope.dimension {
                Some(d) => (d.as_str(), label(&scope.value)),
                None => ("all", "all".to_owned()),
            };
            let labels = format!("{base},by=\"{by}\",scope=\"{value}\"");
            if let Some(v) = s.value {
                let _ = writeln!(values, "opsdesk_kpi_value{{{labels}}} {v}");
            }
            let code = match s.status.as_str() {
                "ok" => 0,
                "warning" => 1,
                "breach" => 2,
                _ => continue,
            };
            let _ = writeln!(statuses, "opsdesk_kpi_status{{{labels}}} {code}");
        }
    }
    let mut out = String::new();
    out.push_str("# HELP opsdesk_kpi_value The latest value of each KPI, overall (by=\"all\") and per breakdown.\n# TYPE opsdesk_kpi_value gauge\n");
    out.push_str(&values);
    out.push_str("# HELP opsdesk_kpi_status Where each KPI stands: 0 ok, 1 warning, 2 breach.\n# TYPE opsdesk_kpi_status gauge\n");
    out.push_str(&statuses);
    for (metric, help) in [
        ("target", "The target of each KPI."),
        ("warning", "The warning threshold of each KPI."),
        ("breach", "The breach threshold of each KPI."),
    ] {
        let _ = writeln!(
            out,
            "# HELP opsdesk_kpi_{metric} {help}\n# TYPE opsdesk_kpi_{metric} gauge"
        );
        for line in thresholds
            .lines()
            .filter(|l| l.starts_with(&format!("opsdesk_kpi_{metric}{{")))
        {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Counts requests and their latency by method, matched route and status.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let _ = metrics_handle();
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    res
}
