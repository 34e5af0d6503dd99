//! The trend report of a period against the period before: volume, the support process's
//! measures, recurring problems, where work waited, reopens and Trusted Advisor savings.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use opsdesk_core::reports::{Count, TrendReport};
use opsdesk_domain::report::Period;
use serde::Deserialize;

use super::charts::{bars, number, spark};
use super::dashboard::shown;
use super::{message, render, when, PageError, Shell, Visit};
use crate::AppState;

struct CountTable {
    title: &'static str,
    rows: Vec<Count>,
}

struct MeasureRow {
    title: String,
    current: String,
    previous: String,
    trend: String,
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportPage {
    shell: Shell,
    period: String,
    error: Option<String>,
    report: Option<ReportView>,
}

struct ReportView {
    from: String,
    to: String,
    previous_from: String,
    total: Count,
    by_severity_chart: String,
    tables: Vec<CountTable>,
    measures: Vec<MeasureRow>,
    recurring: Vec<(String, String, String, i64, Option<String>)>,
    time_in_status: Vec<(String, String, String, String)>,
    reopen_count: usize,
    reopened: Vec<(String, String, String, String)>,
    savings_start: String,
    savings_end: String,
    savings_chart: String,
}

fn view(r: TrendReport) -> ReportView {
    let sev: Vec<(String, f64, String)> = opsdesk_domain::Severity::ALL
        .iter()
        .map(|s| {
            let n = r
                .volume
                .by_severity
                .iter()
                .find(|c| c.name == s.as_str())
                .map_or(0, |c| c.current);
            (
                s.as_str().to_owned(),
                n as f64,
                format!("sev-{}", s.as_str()),
            )
        })
        .collect();
    let savings: Vec<Option<f64>> = r
        .trusted_advisor_savings
        .points
        .iter()
        .map(|p| p.value)
        .collect();
    let usd = |v: Option<f64>| v.map(|v| format!("${v:.0}")).unwrap_or_else(|| "—".into());
    ReportView {
        from: when(&r.period.from),
        to: when(&r.period.to),
        previous_from: when(&r.previous_period.from),
        by_severity_chart: bars("Tickets created by severity", &sev)
            .render()
            .unwrap_or_default(),
        tables: vec![
            CountTable {
                title: "By kind",
                rows: r.volume.by_kind,
            },
            CountTable {
                title: "By source",
                rows: r.volume.by_source,
            },
            CountTable {
                title: "By team",
                rows: r.volume.by_team,
            },
            CountTable {
                title: "By workload",
                rows: r.volume.by_workload,
            },
        ],
        total: r.volume.total,
        measures: r
            .measures
            .iter()
            .map(|m| MeasureRow {
                title: m.title.clone(),
                current: shown(m.unit, m.current),
                previous: shown(m.unit, m.previous),
                trend: m
                    .trend
                    .map(|d| format!("{d:?}").to_lowercase())
                    .unwrap_or_default(),
            })
            .collect(),
        recurring: r
            .recurring_problems
            .iter()
            .map(|p| {
                (
                    p.source.clone(),
                    p.dedup_key.clone(),
                    p.title.clone(),
                    p.occurrences,
                    p.ticket_id.map(opsdesk_domain::Ticket::key_for),
                )
            })
            .collect(),
        time_in_status: r
            .time_in_status
            .iter()
            .map(|s| {
                (
                    s.status.as_str().replace('_', " "),
                    number((s.total_hours * 10.0).round() / 10.0),
                    number((s.mean_hours * 10.0).round() / 10.0),
                    format!("{:.1} %", s.share_percent),
                )
            })
            .collect(),
        reopen_count: r.reopens.count,
        reopened: r
            .reopens
            .tickets
            .iter()
            .map(|t| {
                (
                    t.key.clone(),
                    t.title.clone(),
                    t.reopened_by.clone(),
                    t.reason.clone().unwrap_or_else(|| "—".into()),
                )
            })
            .collect(),
        savings_start: usd(r.trusted_advisor_savings.at_start),
        savings_end: usd(r.trusted_advisor_savings.at_end),
        savings_chart: spark("Trusted Advisor estimated monthly savings", &savings)
            .render()
            .unwrap_or_default(),
    }
}

#[derive(Debug, Deserialize)]
pub struct ReportParams {
    /// `last-week`, `last-month` or `FROM..TO`; last week when absent.
    #[serde(default)]
    period: Option<String>,
}

pub async fn report(
    State(state): State<AppState>,
    visit: Visit,
    Query(p): Query<ReportParams>,
) -> Result<Response, PageError> {
    let period = p
        .period
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "last-week".into());
    let parsed = Period::parse(&period, state.desk.now());
    let (status, report, error) = match parsed {
        Ok(range) => match state.desk.trend_report(&visit.actor, range).await {
            Ok(r) => (StatusCode::OK, Some(view(r)), None),
            Err(opsdesk_core::Error::Forbidden(why)) => {
                return Err(crate::ApiError::Forbidden(why).into())
            }
            Err(e) => {
                let (status, text) = message(&e.into());
                (status, None, Some(text))
            }
        },
        Err(e) => {
            let (status, text) = message(&opsdesk_core::Error::from(e).into());
            (status, None, Some(text))
        }
    };
    let page = ReportPage {
        shell: visit.at("reports").shell,
        period,
        error,
        report,
    };
    Ok(render(status, page))
}
