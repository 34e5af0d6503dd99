//! The start page. Staff see the dashboard: KPI tiles with sparklines, the open backlog by
//! severity and age, AWS Health issues hurting production, the maintenance calendar, Trusted
//! Advisor's findings and savings, and recent escalations to AWS Support. A requester sees
//! the portal: their own requests.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, DurationRound};
use opsdesk_core::kpis::KpiView;
use opsdesk_domain::kpi::{Dimension, Unit};
use opsdesk_domain::{Environment, Severity, Status, Ticket};
use opsdesk_store::{Cursor, SortKey, TicketFilter};
use serde::Deserialize;

use super::charts::{bars, number, spark};
use super::queue::Row;
use super::{iso, render, span, when, PageError, Shell, Visit};
use crate::AppState;

struct Tile {
    name: String,
    title: String,
    value: String,
    status: String,
    status_text: String,
    trend: String,
    spark: String,
}

struct Day {
    label: String,
    windows: Vec<WindowItem>,
}

struct WindowItem {
    title: String,
    ticket: Option<String>,
    at: String,
}

struct AdvisorRow {
    category: String,
    flagged: String,
    savings: String,
}

struct CaseRow {
    ticket: String,
    account: String,
    state: String,
    severity: String,
    iso: String,
    when: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    shell: Shell,
    tiles: Vec<Tile>,
    open_total: String,
    by_severity: String,
    by_age: String,
    health: Vec<Row>,
    days: Vec<Day>,
    advisor: Vec<AdvisorRow>,
    savings_total: String,
    cases: Vec<CaseRow>,
    evaluated: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "portal.html")]
struct PortalPage {
    shell: Shell,
    rows: Vec<Row>,
    /// The next page's cursor, ready for an address.
    next: Option<String>,
}

/// A KPI's value in its unit, as a tile shows it.
pub(super) fn shown(unit: Unit, value: Option<f64>) -> String {
    let Some(v) = value else {
        return "—".into();
    };
    match unit {
        Unit::Seconds => span(v),
        Unit::Percent => format!("{v:.1} %"),
        Unit::Count => number(v),
        Unit::Usd => format!("${v:.0}"),
        Unit::PerHour => format!("{} / h", number(v)),
        Unit::PerDay => format!("{} / day", number(v)),
        Unit::PerWeek => format!("{} / week", number(v)),
    }
}

fn scopes(kpi: Option<&KpiView>, by: Dimension) -> BTreeMap<String, f64> {
    kpi.map(|k| {
        k.scopes
            .iter()
            .filter(|s| s.by == by)
            .filter_map(|s| s.value.map(|v| (s.scope.clone(), v)))
            .collect()
    })
    .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct HomeParams {
    /// The portal's next page.
    cursor: Option<String>,
}

pub async fn home(
    State(state): State<AppState>,
    visit: Visit,
    Query(p): Query<HomeParams>,
) -> Result<Response, PageError> {
    if visit.shell.portal {
        let sort = SortKey::default();
        let cursor =
            match p.cursor.as_deref().filter(|c| !c.is_empty()) {
                None => None,
                Some(c) => Some(Cursor::decode(c, sort).ok_or_else(|| {
                    crate::ApiError::invalid("cursor", "not a cursor of this list")
                })?),
            };
        let filter = TicketFilter {
            sort,
            cursor,
            limit: 50,
            ..TicketFilter::default()
        };
        let page = state.desk.tickets(&visit.actor, &filter).await?;
        let rows = page.items.iter().map(Row::of).collect();
        return Ok(render(
            StatusCode::OK,
            PortalPage {
                shell: visit.at("dashboard").shell,
                rows,
                next: page.next_cursor.map(|c| super::query_value(&c)),
            },
        ));
    }
    dashboard(&state, visit).await
}

async fn dashboard(state: &AppState, visit: Visit) -> Result<Response, PageError> {
    let desk = &state.desk;
    let actor = &visit.actor;
    let now = desk.now();
    let kpis = desk.kpis(actor, None).await?;
    let find = |name: &str| kpis.iter().find(|k| k.info.name == name);

    // Tiles, each with the last week of its series.
    let to = now.duration_trunc(Duration::hours(1)).unwrap_or(now) + Duration::hours(1);
    let from = to - Duration::days(7);
    let mut tiles = Vec::with_capacity(kpis.len());
    for k in &kpis {
        let series = desk
            .kpi_series_of(actor, &k.info, "", from, to, Duration::hours(6))
            .await?;
        let values: Vec<Option<f64>> = series.points.iter().map(|p| p.value).collect();
        tiles.push(Tile {
            name: k.info.name.clone(),
            title: k.info.title.clone(),
            value: shown(k.info.unit, k.value),
            status: k.status.as_str().to_owned(),
            status_text: k.status.as_str().replace('_', " "),
            trend: match k.trend {
                Some(d) => format!("{d:?}").to_lowercase(),
                None => String::new(),
            },
            spark: spark(format!("{}, last 7 days", k.info.title), &values)
                .render()
                .unwrap_or_default(),
        });
    }

    let backlog = find("backlog");
    let by_sev = scopes(backlog, Dimension::Severity);
    let sev_items: Vec<(String, f64, String)> = Severity::ALL
        .iter()
        .map(|s| {
            (
                s.as_str().to_owned(),
                by_sev.get(s.as_str()).copied().unwrap_or(0.0),
                format!("sev-{}", s.as_str()),
            )
        })
        .collect();
    let by_age = scopes(backlog, Dimension::Age);
    let age_items: Vec<(String, f64, String)> = [
        ("lt_1d", "< 1 day"),
        ("1d_7d", "1–7 days"),
        ("7d_30d", "7–30 days"),
        ("gt_30d", "> 30 days"),
    ]
    .iter()
    .map(|(key, label)| {
        (
            (*label).to_owned(),
            by_age.get(*key).copied().unwrap_or(0.0),
            String::new(),
        )
    })
    .collect();

    // Open AWS Health tickets on production workloads, most severe first.
    let production: Vec<String> = desk
        .workloads(actor)
        .await?
        .into_iter()
        .filter(|w| w.environment == Environment::Production)
        .map(|w| w.name)
        .collect();
    let health_filter = TicketFilter {
        statuses: Status::ALL
            .iter()
            .copied()
            .filter(|s| s.is_open())
            .collect(),
        source: Some(opsdesk_domain::signal::HEALTH.into()),
        sort: SortKey::parse("severity").unwrap_or_default(),
        limit: 200,
        ..TicketFilter::default()
    };
    let health = if production.is_empty() {
        Vec::new()
    } else {
        desk.tickets(actor, &health_filter)
            .await?
            .items
            .iter()
            .filter(|t| t.workload.as_ref().is_some_and(|w| production.contains(w)))
            .take(10)
            .map(Row::of)
            .collect()
    };

    let start = now.duration_trunc(Duration::days(1)).unwrap_or(now);
    let windows = desk
        .maintenance(actor, start, start + Duration::days(14))
        .await?;
    let days = (0..14)
        .map(|d| {
            let day = start + Duration::days(d);
            let next = day + Duration::days(1);
            Day {
                label: day.format("%a %d").to_string(),
                windows: windows
                    .iter()
                    .filter(|w| w.start < next && w.end.unwrap_or(w.start) >= day)
                    .map(|w| WindowItem {
                        title: match &w.workload {
                            Some(wl) => format!("{} ({wl})", w.title),
                            None => w.title.clone(),
                        },
                        ticket: w.ticket_id.map(Ticket::key_for),
                        at: when(&w.start),
                    })
                    .collect(),
            }
        })
        .collect();

    let flagged = scopes(find("trusted_advisor_flagged"), Dimension::Category);
    let savings = scopes(find("trusted_advisor_savings"), Dimension::Category);
    let mut categories: Vec<&String> = flagged.keys().chain(savings.keys()).collect();
    categories.sort();
    categories.dedup();
    let advisor = categories
        .into_iter()
        .map(|c| AdvisorRow {
            category: c.replace('_', " "),
            flagged: flagged
                .get(c)
                .map(|v| number(*v))
                .unwrap_or_else(|| "0".into()),
            savings: savings
                .get(c)
                .map(|v| format!("${v:.0}"))
                .unwrap_or_else(|| "—".into()),
        })
        .collect();

    let cases = desk
        .recent_aws_cases(actor, 8)
        .await?
        .into_iter()
        .map(|c| CaseRow {
            ticket: Ticket::key_for(c.ticket_id),
            account: c.account_id,
            state: c.state,
            severity: c.severity.unwrap_or(c.requested_severity),
            iso: iso(&c.created_at),
            when: when(&c.created_at),
        })
        .collect();

    let page = DashboardPage {
        tiles,
        open_total: shown(Unit::Count, backlog.and_then(|b| b.value)),
        by_severity: bars("Open tickets by severity", &sev_items)
            .render()
            .unwrap_or_default(),
        by_age: bars("Open tickets by age", &age_items)
            .render()
            .unwrap_or_default(),
        health,
        days,
        advisor,
        savings_total: shown(
            Unit::Usd,
            find("trusted_advisor_savings").and_then(|k| k.value),
        ),
        cases,
        evaluated: kpis
            .iter()
            .filter_map(|k| k.evaluated_at)
            .max()
            .map(|t| (iso(&t), when(&t))),
        shell: visit.at("dashboard").shell,
    };
    Ok(render(StatusCode::OK, page))
}
