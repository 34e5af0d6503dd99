//! KPIs computed from tickets made through the real ticket and ingest paths, checked against
//! values worked out by hand: business hours across a weekend and a holiday, time spent
//! pending, tickets still open at the window's edge. Status changes raise `kpi_breach` /
//! `kpi_recovered` through the routing rules, and the values reach the API, the CLI and
//! /metrics.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use opsdesk_core::kpis::{KpiOverride, KpiSettings, KpiView};
use opsdesk_core::outbox::NotifySettings;
use opsdesk_core::sla::SlaSettings;
use opsdesk_core::{Actor, Desk, FixedClock};
use opsdesk_domain::kpi::{Dimension, KpiStatus, Span};
use opsdesk_domain::{CalendarSpec, NewTicket, SlaPolicy, TicketPatch, Validated};
use opsdesk_store::OutboxFilter;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestDb, TestServer};

on_both_backends!(
    kpi_values_match_hand_computed_fixtures,
    kpi_status_changes_are_announced_and_recorded,
    kpis_reach_the_api_the_cli_and_metrics,
    trend_report_compares_with_the_period_before,
    scheduled_reports_go_out_once_per_period,
    a_scheduled_report_reaches_a_signed_webhook,
);

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Thursday 24 December 2026, 16:00 UTC. Friday the 25th is a holiday, then a weekend.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 24, 16, 0, 0).unwrap()
}

fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, h, m, 0).unwrap()
}

/// Weekdays 09:00 to 17:00 UTC, closed on 25 December; SEV3 answers within 1 business hour
/// and is resolved within 8.
fn sla() -> SlaSettings {
    let calendar = from::<CalendarSpec>(json!({
        "name": "office", "time_zone": "UTC", "holidays": ["2026-12-25"],
        "hours": {"mon": ["09:00-17:00"], "tue": ["09:00-17:00"], "wed": ["09:00-17:00"],
                  "thu": ["09:00-17:00"], "fri": ["09:00-17:00"]}
    }))
    .validate()
    .unwrap();
    let policy = from::<SlaPolicy>(json!({
        "name": "sev3-office", "severity": "SEV3", "first_response_minutes": 60,
        "resolution_minutes": 480, "calendar": "office"
    }))
    .validate()
    .unwrap();
    SlaSettings::new(vec![calendar], vec![policy]).unwrap()
}

/// Seven-day windows; the backlog breaches at two open tickets.
fn kpi_settings() -> KpiSettings {
    let mut o = BTreeMap::new();
    for name in [
        "mtta",
        "mttr",
        "first_response_sla",
        "resolution_sla",
        "reopen_rate",
        "tickets_created",
    ] {
        o.insert(
            name.to_owned(),
            KpiOverride {
                window: Some(Span::days(7)),
                ..KpiOverride::default()
            },
        );
    }
    o.insert(
        "backlog".to_owned(),
        KpiOverride {
            target: Some(0.0),
            warning: Some(1.0),
            breach: Some(2.0),
            ..KpiOverride::default()
        },
    );
    let custom = vec![
        from(json!({
            "name": "resolve_wall_mean", "over": "tickets", "aggregate": "mean",
            "from": "created_at", "to": "resolved_at", "window_on": "created_at", "window": "7d",
            "target": 3600, "warning": 7200, "breach": 86400, "scope": ["team"]
        })),
        from(json!({
            "name": "resolve_wall_p90", "over": "tickets", "aggregate": "p90",
            "from": "created_at", "to": "resolved_at", "window": "7d",
            "target": 3600, "warning": 7200, "breach": 86400
        })),
        from(json!({
            "name": "resolved_share", "over": "tickets", "aggregate": "ratio",
            "numerator": {"statuses": ["resolved", "closed"]}, "denominator": {"teams": ["ops", "db"]},
            "window": "7d", "better": "higher", "target": 90, "warning": 80, "breach": 50
        })),
        from(json!({
            "name": "db_resolved_share", "over": "tickets", "aggregate": "ratio",
            "numerator": {"statuses": ["resolved", "closed"]}, "denominator": {"teams": ["db"]},
            "window": "7d", "better": "higher", "target": 90, "warning": 80, "breach": 50
        })),
        from(json!({
            "name": "tickets_per_day", "over": "tickets", "aggregate": "rate", "per": "day",
            "window": "7d", "target": 10, "warning": 20, "breach": 30
        })),
    ];
    KpiSettings::new(Span::minutes(5), Span::days(30), &o, custom).unwrap()
}

fn notify() -> NotifySettings {
    NotifySettings {
        channels: vec![from(
            json!({"name": "hook", "type": "webhook", "url": "https://hooks.example.com/kpi"}),
        )],
        rules: vec![from(
            json!({"name": "kpis", "events": ["kpi_breach", "kpi_recovered"], "channels": ["hook"]}),
        )],
        ..NotifySettings::default()
    }
}

async fn desk(backend: Backend) -> (TestDb, Desk, Arc<FixedClock>) {
    let db = TestDb::new(backend).await;
    let clock = Arc::new(FixedClock::new(t0()));
    let desk = Desk::new(db.desk().await.db().clone(), clock.clone())
        .with_sla_settings(sla())
        .with_notify_settings(notify())
        .with_kpi_settings(kpi_settings());
    (db, desk, clock)
}

/// Moves the fake clock to `when`.
fn set(clock: &FixedClock, desk: &Desk, when: DateTime<Utc>) {
    clock.advance(when - desk.now());
}

async fn open(desk: &Desk, title: &str, team: &str) -> i64 {
    desk.create_ticket(
        &Actor::cli(),
        from::<NewTicket>(
            json!({"title": title, "kind": "incident", "severity": "SEV3", "team": team}),
        ),
    )
    .await
    .unwrap()
    .id
}

async fn status(desk: &Desk, id: i64, to: &str) {
    desk.update_ticket(
        &Actor::cli(),
        id,
        None,
        from::<TicketPatch>(json!({"status": to})),
    )
    .await
    .unwrap();
}

/// Lets the clock watcher measure every ticket that changed.
async fn watch(desk: &Desk) {
    while desk.watch_clocks().await.unwrap() > 0 {}
}

fn kpi<'a>(all: &'a [KpiView], name: &str) -> &'a KpiView {
    all.iter().find(|k| k.info.name == name).unwrap()
}

fn scoped(k: &KpiView, by: Dimension, scope: &str) -> Option<f64> {
    k.scopes
        .iter()
        .find(|s| s.by == by && s.scope == scope)
        .and_then(|s| s.value)
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-6)
}

/// Opens the fixture tickets:
/// - E (ops): opened, answered and resolved on 14 December, before the window;
/// - D (db): opened on Friday 18 December, never answered, still open;
/// - A (ops): opened Thursday 24 December 16:30, acknowledged Monday 28th 09:45 (30 + 45 =
///   75 business minutes: the first response is missed, it was due Monday 09:30), pending
///   10:00 to 14:00, resolved 16:00 (30 + 420 - 240 = 210 business minutes: met);
/// - B (ops): opened Monday 10:00, acknowledged 10:20 (20 minutes), resolved 12:00, reopened
///   13:00, resolved again 14:00 (240 business minutes);
/// - C (db): opened Monday 11:00, not answered (its first response was due 12:00).
async fn fixture(desk: &Desk, clock: &FixedClock) -> [i64; 5] {
    set(clock, desk, at(14, 10, 0));
    let e = open(desk, "E", "ops").await;
    set(clock, desk, at(14, 10, 30));
    status(desk, e, "acknowledged").await;
    set(clock, desk, at(14, 12, 0));
    status(desk, e, "resolved").await;
    set(clock, desk, at(18, 10, 0));
    let d = open(desk, "D", "db").await;
    set(clock, desk, at(24, 16, 30));
    let a = open(desk, "A", "ops").await;
    set(clock, desk, at(28, 9, 45));
    status(desk, a, "acknowledged").await;
    set(clock, desk, at(28, 10, 0));
    status(desk, a, "pending").await;
    let b = open(desk, "B", "ops").await;
    set(clock, desk, at(28, 10, 20));
    status(desk, b, "acknowledged").await;
    set(clock, desk, at(28, 11, 0));
    let c = open(desk, "C", "db").await;
    set(clock, desk, at(28, 12, 0));
    status(desk, b, "resolved").await;
    set(clock, desk, at(28, 13, 0));
    status(desk, b, "in_progress").await;
    desk.add_comment(
        &Actor::cli(),
        b,
        from(json!({"body": "Payment retries still fail after the fix", "public": false})),
    )
    .await
    .unwrap();
    set(clock, desk, at(28, 14, 0));
    status(desk, a, "in_progress").await;
    status(desk, b, "resolved").await;
    set(clock, desk, at(28, 16, 0));
    status(desk, a, "resolved").await;
    set(clock, desk, at(28, 17, 30));
    watch(desk).await;
    [a, b, c, d, e]
}

async fn kpi_values_match_hand_computed_fixtures(backend: Backend) {
    let (db, desk, clock) = desk(backend).await;
    fixture(&desk, &clock).await;
    let evaluated = desk.evaluate_kpis(true).await.unwrap();
    assert!(evaluated.contains(&"mtta".to_owned()), "{evaluated:?}");
    let all = desk.kpis(&Actor::cli(), None).await.unwrap();

    // Answered in the window: A after 75 business minutes, B after 20.
    let mtta = kpi(&all, "mtta");
    assert!(close(mtta.value, (4500.0 + 1200.0) / 2.0), "{mtta:?}");
    assert_eq!(
        mtta.status,
        KpiStatus::Warning,
        "2850 s is past the 1800 s warning"
    );
    assert!(close(scoped(mtta, Dimension::Team, "ops"), 2850.0));
    assert_eq!(
        scoped(mtta, Dimension::Team, "db"),
        None,
        "db answered nothing"
    );

    // Resolved in the window: A after 210 business minutes, B after 240.
    let mttr = kpi(&all, "mttr");
    assert!(close(mttr.value, (12_600.0 + 14_400.0) / 2.0), "{mttr:?}");

    // First responses decided in the window: B met; A missed (due Monday 09:30), C missed
    // (due 12:00, still unanswered). D's was due on 18 December, before the window.
    let first = kpi(&all, "first_response_sla");
    assert!(close(first.value, 100.0 / 3.0), "{first:?}");
    assert_eq!(first.status, KpiStatus::Breach);
    assert!(close(scoped(first, Dimension::Team, "ops"), 50.0));
    assert!(close(scoped(first, Dimension::Team, "db"), 0.0));

    // Resolutions: A and B met. C is due on Tuesday; D's was due on 21 December 10:00,
    // before the window began (21 December 17:30).
    let resolution = kpi(&all, "resolution_sla");
    assert!(close(resolution.value, 100.0), "{resolution:?}");
    assert_eq!(resolution.status, KpiStatus::Ok);

    // Of A and B, B had been reopened.
    assert!(close(kpi(&all, "reopen_rate").value, 50.0));

    // Open now: C (hours old) and D (ten days old).
    let backlog = kpi(&all, "backlog");
    assert!(close(backlog.value, 2.0), "{backlog:?}");
    assert!(close(scoped(backlog, Dimension::Age, "lt_1d"), 1.0));
    assert!(close(scoped(backlog, Dimension::Age, "7d_30d"), 1.0));
    assert!(close(scoped(backlog, Dimension::Severity, "SEV3"), 2.0));

    // Created in the window: A, B and C.
    let created = kpi(&all, "tickets_created");
    assert!(close(created.value, 3.0));
    assert!(close(scoped(created, Dimension::Source, "manual"), 3.0));

    // Custom KPIs count wall-clock time: A took 95 h 30 m from Thursday 16:30 to Monday
    // 16:00, B 4 h.
    let wall = kpi(&all, "resolve_wall_mean");
    assert!(close(wall.value, (343_800.0 + 14_400.0) / 2.0), "{wall:?}");
    assert!(close(scoped(wall, Dimension::Team, "ops"), 179_100.0));
    assert_eq!(scoped(wall, Dimension::Team, "db"), None);
    assert!(close(kpi(&all, "resolve_wall_p90").value, 343_800.0));
    // Of A, B and C (created in the window), A and B are resolved.
    let share = kpi(&all, "resolved_share");
    assert!(close(share.value, 200.0 / 3.0), "{share:?}");
    assert_eq!(share.status, KpiStatus::Warning);
    assert!(close(kpi(&all, "tickets_per_day").value, 3.0 / 7.0));
    // The numerator counts only what the denominator does: of db's C, none is resolved.
    assert!(close(kpi(&all, "db_resolved_share").value, 0.0));

    // Nothing to say about AWS yet: counts are zero, shares have no data.
    assert!(close(kpi(&all, "aws_escalations").value, 0.0));
    assert_eq!(
        kpi(&all, "aws_case_first_response").status,
        KpiStatus::NoData
    );
    assert!(close(kpi(&all, "trusted_advisor_savings").value, 0.0));
    db.drop_schema().await;
}

async fn kpi_status_changes_are_announced_and_recorded(backend: Backend) {
    let (db, desk, clock) = desk(backend).await;
    let [_, _, c, d, _] = fixture(&desk, &clock).await;
    desk.evaluate_kpis(true).await.unwrap();
    // An evaluation with nothing changed announces nothing again.
    clock.advance(TimeDelta::minutes(5));
    desk.evaluate_kpis(false).await.unwrap();

    // C and D resolved: the backlog leaves its breach.
    status(&desk, c, "resolved").await;
    status(&desk, d, "resolved").await;
    watch(&desk).await;
    // Not due yet: the interval (5 minutes) has not passed since the last evaluation.
    clock.advance(TimeDelta::minutes(1));
    assert!(desk.evaluate_kpis(false).await.unwrap().is_empty());
    clock.advance(TimeDelta::minutes(4));
    let done = desk.evaluate_kpis(false).await.unwrap();
    assert!(done.contains(&"backlog".to_owned()), "{done:?}");

    let items = desk
        .db()
        .outbox(&OutboxFilter {
            limit: 100,
            ..OutboxFilter::default()
        })
        .await
        .unwrap();
    let about = |kpi: &str, event: &str| {
        items
            .iter()
            .filter(|i| i.event == event && i.channel == "hook")
            .filter(|i| {
                i.notification["title"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(kpi))
            })
            .filter(|i| !i.notification["title"].as_str().unwrap_or("").contains('('))
            .count()
    };
    assert_eq!(about("Open backlog", "kpi_breach"), 1, "{items:#?}");
    assert_eq!(about("Open backlog", "kpi_recovered"), 1);
    assert_eq!(about("First-response SLA compliance", "kpi_breach"), 1);
    let breach = items
        .iter()
        .find(|i| i.event == "kpi_breach" && i.notification["title"] == "Open backlog")
        .unwrap();
    assert!(breach.ticket_id.is_none());
    assert!(
        breach.notification["summary"]
            .as_str()
            .unwrap()
            .contains("Open backlog KPI breached: 2"),
        "{}",
        breach.notification["summary"]
    );
    // Breakdowns are announced too, with the team for routing rules to match.
    assert!(items.iter().any(|i| i.event == "kpi_breach"
        && i.notification["title"] == "First-response SLA compliance (team db)"
        && i.notification["team"] == "db"));

    let trail = desk.db().audit_page(0, 1000).await.unwrap();
    let recorded: Vec<(&str, &Value)> = trail
        .iter()
        .filter(|e| e.action.starts_with("kpi.") && e.changes["kpi"].after == "backlog")
        .filter(|e| e.changes["scope"].after == "")
        .map(|e| (e.action.as_str(), &e.changes["status"].after))
        .collect();
    assert_eq!(
        recorded,
        [
            ("kpi.breach", &json!("breach")),
            ("kpi.recovered", &json!("ok"))
        ]
    );

    // The series shows the breach and the recovery, one value per step.
    let now = desk.now();
    let series = desk
        .kpi_series(
            &Actor::cli(),
            "backlog",
            "",
            now - TimeDelta::minutes(20),
            now + TimeDelta::minutes(1),
            TimeDelta::minutes(1),
        )
        .await
        .unwrap();
    let values: Vec<Option<f64>> = series.points.iter().map(|p| p.value).collect();
    assert_eq!(values.len(), 21);
    assert_eq!(values[0], None, "before the first evaluation");
    assert!(
        values.contains(&Some(2.0)) && values.last() == Some(&Some(0.0)),
        "{values:?}"
    );
    assert_eq!(
        kpi(&desk.kpis(&Actor::cli(), None).await.unwrap(), "backlog").status,
        KpiStatus::Ok
    );
    db.drop_schema().await;
}

/// A TrustedAdvisor cost finding with savings, as EventBridge delivers it.
fn savings_event(resource: &str, status: &str, savings: &str) -> Value {
    json!({
        "version": "0",
        "id": format!("ta-{resource}-{status}"),
        "detail-type": "Trusted Advisor Check Item Refresh Notification",
        "source": "aws.trustedadvisor",
        "account": crate::signals::ACCOUNT,
        "time": "2026-11-23T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "check-name": "Low Utilization Amazon EC2 Instances",
            "check-item-detail": {"Instance ID": resource, "Estimated Monthly Savings": savings},
            "status": status,
            "resource_id": resource,
            "uuid": "bb12345f-55c7-498e-b7ac-123456781234"
        }
    })
}

async fn kpis_reach_the_api_the_cli_and_metrics(backend: Backend) {
    let server = TestServer::start(backend).await.with_ingest_token().await;
    let admin = Some(server.admin.as_str());
    // A production workload hit by an AWS Health issue, and two idle instances.
    let w = server
        .call(
            Method::POST,
            "/api/v1/workloads",
            admin,
            Some(
                json!({"name": "shop", "environment": "production", "team": "ops",
                        "accounts": [crate::signals::ACCOUNT]}),
            ),
        )
        .await;
    assert_eq!(w.status, StatusCode::CREATED, "{}", w.body);
    let r = server
        .events(json!([
            crate::signals::health_event(
                "h1",
                "open",
                "Mon, 23 Nov 2026 06:10:00 GMT",
                "EC2 errors"
            ),
            savings_event("i-1", "WARN", "$120.50"),
            savings_event("i-2", "WARN", "$79.50"),
        ]))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    for i in 0..3 {
        server
            .ticket(json!({"title": format!("printer {i}"), "kind": "service_request", "severity": "SEV4"}))
            .await;
    }

    // Bad definitions are refused with the field named.
    let define = |body: Value| server.call(Method::POST, "/api/v1/kpis", admin, Some(body));
    let good = json!({
        "name": "sev4_requests", "over": "tickets", "aggregate": "count",
        "filter": {"severities": ["SEV4"]}, "window": "7d",
        "target": 5, "warning": 10, "breach": 20, "scope": ["kind"]
    });
    for (change, field) in [
        (json!({"aggregate": "median"}), "aggregate"),
        (json!({"colour": "red"}), "colour"),
        (json!({"window": "0d"}), "window"),
        (json!({"warning": 30}), "breach"),
        (
            json!({"aggregate": "mean", "from": "created_at", "to": "answered_at"}),
            "to",
        ),
        (json!({"filter": {"states": ["firing"]}}), "filter.states"),
    ] {
        let mut body = good.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        define(body).await.assert_problem(422, Some(field));
    }
    let viewer = server
        .call(
            Method::POST,
            "/api/v1/kpis",
            Some(&server.viewer),
            Some(good.clone()),
        )
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    let r = define(good).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["unit"], "count");

    // Measure and evaluate now rather than wait for the server's schedule.
    let desk = server.db.desk().await;
    while desk.watch_clocks().await.unwrap() > 0 {}
    desk.evaluate_kpis(true).await.unwrap();
    desk.db().close().await;

    let r = server.get("/api/v1/kpis").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let find = |name: &str| {
        r.body["kpis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {}", r.body))
    };
    assert_eq!(find("sev4_requests")["value"], 3.0);
    assert_eq!(
        find("sev4_requests")["scopes"][0]["scope"],
        "service_request"
    );
    let health = find("health_open_production");
    assert_eq!(health["value"], 1.0, "{health}");
    assert_eq!(health["status"], "warning");
    let savings = find("trusted_advisor_savings");
    assert_eq!(savings["value"], 200.0, "{savings}");
    assert_eq!(savings["scopes"][0]["by"], "category");
    assert_eq!(savings["scopes"][0]["scope"], "cost_optimizing");
    assert_eq!(find("trusted_advisor_flagged")["value"], 2.0);
    let created = find("tickets_created");
    assert!(created["value"].as_f64().unwrap() >= 4.0, "{created}");
    assert!(created["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["by"] == "source" && s["scope"] == "aws.health"));
    assert_eq!(find("mtta")["thresholds"]["target"], 900.0);

    let one = server.get("/api/v1/kpis/backlog?").await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    server
        .get("/api/v1/kpis/nothing")
        .await
        .assert_problem(404, None);
    server
        .get("/api/v1/kpis?by=planet")
        .await
        .assert_problem(422, Some("by"));
    let series = server.get("/api/v1/kpis/backlog/series?step=1h").await;
    assert_eq!(series.status, StatusCode::OK, "{}", series.body);
    assert_eq!(series.body["points"].as_array().unwrap().len(), 7 * 24);
    server
        .get("/api/v1/kpis/backlog/series?step=1m&from=2020-01-01T00:00:00Z")
        .await
        .assert_problem(422, Some("step"));
    server
        .get("/api/v1/kpis/backlog/series?scope=planet")
        .await
        .assert_problem(422, Some("scope"));

    let metrics = server.metrics().await;
    assert!(
        metrics.contains("opsdesk_kpi_value{kpi=\"trusted_advisor_savings\",unit=\"usd\",by=\"all\",scope=\"all\"} 200"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "opsdesk_kpi_status{kpi=\"health_open_production\",unit=\"count\",by=\"workload\",scope=\"shop\"} 1"
    ));
    assert!(metrics.contains("opsdesk_kpi_target{kpi=\"mtta\",unit=\"seconds\"} 900"));

    // The CLI lists the same values.
    let dir = tempfile::tempdir().unwrap();
    let out = crate::cli::opsdesk(dir.path(), &server.db.url)
        .args(["kpi", "list", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let savings = listed["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "trusted_advisor_savings")
        .unwrap();
    assert_eq!(savings["value"], 200.0);
    let table = crate::cli::opsdesk(dir.path(), &server.db.url)
        .args(["kpi", "evaluate"])
        .output()
        .unwrap();
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("trusted_advisor_savings") && l.contains("$200.00")),
        "{text}"
    );

    // Trend reports through the API, in JSON, Markdown and CSV.
    let r = server.get("/api/v1/reports/trends?period=last-month").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["volume"]["by_kind"].is_array() && r.body["measures"].is_array());
    let md = server
        .http
        .get(server.url("/api/v1/reports/trends?period=2026-01-01..2026-12-31&format=md"))
        .bearer_auth(&server.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(md.status(), StatusCode::OK);
    assert!(md.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    assert!(md
        .text()
        .await
        .unwrap()
        .starts_with("# Support trends 2026-01-01"));
    server
        .get("/api/v1/reports/trends?period=yesterday")
        .await
        .assert_problem(422, Some("period"));
    server
        .get("/api/v1/reports/trends?format=pdf")
        .await
        .assert_problem(422, Some("format"));

    let gone = server
        .call(Method::DELETE, "/api/v1/kpis/sev4_requests", admin, None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    server
        .call(Method::DELETE, "/api/v1/kpis/mtta", admin, None)
        .await
        .assert_problem(409, None);
    server.stop().await;
}

async fn trend_report_compares_with_the_period_before(backend: Backend) {
    let (db, desk, clock) = desk(backend).await;
    let [_, b, ..] = fixture(&desk, &clock).await;
    // A CloudWatch alarm that fires, clears and fires again: one ticket, resolved and reopened.
    let monitor = Actor::new("token:monitor", opsdesk_domain::Role::Ingest);
    for (state, minute) in [("ALARM", 31), ("OK", 32), ("ALARM", 33)] {
        set(&clock, &desk, at(28, 17, minute));
        let when = format!("2026-12-28T17:{minute}:00.000+0000");
        let event = crate::signals::alarm_event("prod-checkout-5xx", state, &when);
        let signals = opsdesk_domain::signal::eventbridge::from_events(&event, desk.now()).unwrap();
        desk.ingest(&monitor, signals).await.unwrap();
    }
    watch(&desk).await;

    let period =
        opsdesk_domain::report::Period::parse("2026-12-21..2026-12-28", desk.now()).unwrap();
    let r = desk.trend_report(&Actor::cli(), period).await.unwrap();
    assert_eq!(r.previous_period.from, at(13, 0, 0));

    // Several windows read together give what each gives alone.
    let sorted = |mut f: Vec<opsdesk_store::TicketFacts>| {
        f.sort_by_key(|x| format!("{x:?}"));
        f
    };
    for windows in [
        vec![(period.from, period.to), (at(13, 0, 0), at(21, 0, 0))],
        vec![
            (at(1, 0, 0), at(31, 0, 0)),
            (at(27, 0, 0), at(29, 0, 0)),
            (at(20, 0, 0), at(21, 0, 0)),
        ],
    ] {
        let together = desk
            .db()
            .ticket_facts_of(&windows, desk.now())
            .await
            .unwrap();
        assert_eq!(together.len(), windows.len());
        for ((from, to), facts) in windows.iter().zip(together) {
            let alone = desk
                .db()
                .ticket_facts(*from, *to, desk.now())
                .await
                .unwrap();
            assert!(!alone.is_empty());
            assert_eq!(sorted(facts), sorted(alone), "window {from}..{to}");
        }
    }

    // Created: A, B, C and the alarm's ticket; before: D and E.
    assert_eq!((r.volume.total.current, r.volume.total.previous), (4, 2));
    let team = |name: &str| {
        r.volume
            .by_team
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .unwrap()
    };
    assert_eq!((team("ops").current, team("ops").previous), (2, 1));
    assert_eq!((team("db").current, team("db").previous), (1, 1));
    let cloudwatch = r
        .volume
        .by_source
        .iter()
        .find(|c| c.name == "aws.cloudwatch")
        .unwrap();
    assert_eq!((cloudwatch.current, cloudwatch.previous), (1, 0));

    let m = |name: &str| {
        let m = r.measures.iter().find(|m| m.name == name).unwrap();
        (
            m.current.map(|v| (v * 100.0).round() / 100.0),
            m.previous,
            m.trend,
        )
    };
    use opsdesk_domain::kpi::Direction::{Steady, Worsening};
    // E was answered in 30 business minutes and resolved in 120; D missed its first response.
    // The alarm's ticket was answered (resolved by its OK) at 17:32, after hours: in 0
    // business seconds, within its target.
    assert_eq!(m("mtta"), (Some(1900.0), Some(1800.0), Some(Worsening)));
    assert_eq!(m("mttr"), (Some(13_500.0), Some(7200.0), Some(Worsening)));
    assert_eq!(
        m("first_response_sla"),
        (Some(50.0), Some(50.0), Some(Steady))
    );
    // D's resolution fell due on 21 December 10:00, in this period: missed.
    assert_eq!(
        m("resolution_sla"),
        (Some(66.67), Some(100.0), Some(Worsening))
    );
    assert_eq!(m("reopen_rate"), (Some(50.0), Some(0.0), Some(Worsening)));

    // A waited in new over the holiday weekend (89 h 15 m) and 4 h in pending.
    let hours = |s: &str| {
        r.time_in_status
            .iter()
            .find(|t| t.status.as_str() == s)
            .map(|t| (t.total_hours * 1000.0).round() / 1000.0)
            .unwrap()
    };
    assert_eq!(hours("new"), 89.583);
    assert_eq!(hours("acknowledged"), 1.917);
    assert_eq!(hours("in_progress"), 3.0);
    assert_eq!(hours("pending"), 4.0);

    // The alarm fired twice; B and the alarm's ticket were reopened.
    assert_eq!(r.recurring_problems.len(), 1, "{:?}", r.recurring_problems);
    assert_eq!(r.recurring_problems[0].occurrences, 2);
    assert_eq!(r.reopens.count, 2);
    let reopened_b = r
        .reopens
        .tickets
        .iter()
        .find(|t| t.key == format!("OPS-{b}"))
        .unwrap();
    assert_eq!(
        reopened_b.reason.as_deref(),
        Some("Payment retries still fail after the fix")
    );
    assert_eq!(reopened_b.reopened_by, "cli");
    assert!(r
        .reopens
        .by_source
        .iter()
        .any(|c| c.name == "aws.cloudwatch" && c.current == 1));

    let md = r.markdown();
    assert!(
        md.contains("| Mean time to acknowledge | 31m 40s | 30m 0s | worsening |"),
        "{md}"
    );
    assert!(md.contains("| ops | 2 | 1 | +100% |"), "{md}");
    let csv = r.csv().unwrap();
    assert!(csv.contains("measure,mttr,13500,7200"), "{csv}");
    assert!(csv.contains("hours_in_status,pending,4.000,"), "{csv}");

    // The CLI writes the same report.
    let dir = tempfile::tempdir().unwrap();
    let out = crate::cli::opsdesk(dir.path(), &db.url)
        .args([
            "report",
            "--period",
            "2026-12-21..2026-12-28",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["volume"]["total"]["current"], 4);
    assert_eq!(cli["measures"][1]["current"], 13_500.0);
    let bad = crate::cli::opsdesk(dir.path(), &db.url)
        .args(["report", "--period", "yesterday"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--period"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    db.drop_schema().await;
}

async fn scheduled_reports_go_out_once_per_period(backend: Backend) {
    let (db, desk, clock) = desk(backend).await;
    let desk = desk.with_report_schedules(vec![from(
        json!({"name": "weekly-ops", "every": "week", "channel": "hook"}),
    )]);
    fixture(&desk, &clock).await;
    let reports = |desk: Desk| async move {
        desk.db()
            .outbox(&OutboxFilter {
                limit: 100,
                ..OutboxFilter::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.event == "report")
            .collect::<Vec<_>>()
    };
    assert_eq!(desk.deliver_reports().await.unwrap(), 1);
    assert_eq!(desk.deliver_reports().await.unwrap(), 0, "once per period");
    let sent = reports(desk.clone()).await;
    assert_eq!(sent.len(), 1);
    let n = &sent[0].notification;
    assert_eq!(sent[0].channel, "hook");
    assert_eq!(n["title"], "Support trends 2026-12-21 to 2026-12-27");
    // The week before Monday 28 December: only A was opened in it.
    assert_eq!(n["report"]["volume"]["total"]["current"], 1);
    assert!(n["summary"]
        .as_str()
        .unwrap()
        .starts_with("# Support trends 2026-12-21 00:00 UTC to 2026-12-28 00:00 UTC"));

    clock.advance(TimeDelta::days(7));
    assert_eq!(desk.deliver_reports().await.unwrap(), 1);
    let sent = reports(desk.clone()).await;
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .any(|i| i.notification["title"] == "Support trends 2026-12-28 to 2027-01-03"));
    db.drop_schema().await;
}

/// A real server with a weekly schedule sends last week's report at start, through the
/// dispatcher, to a webhook that checks its signature.
async fn a_scheduled_report_reaches_a_signed_webhook(backend: Backend) {
    let receiver = crate::channels::Receiver::start().await;
    let hook = format!("{}/hook", receiver.base);
    let server = TestServer::start_with(backend, move |config, _| {
        config.notify.allow_private_addresses = true;
        config.notify.channels = vec![from(json!({
            "name": "reports-hook", "type": "webhook", "url": hook,
            "secret": crate::channels::SECRET
        }))];
        config.reports.schedules = vec![from(
            json!({"name": "weekly", "every": "week", "channel": "reports-hook"}),
        )];
    })
    .await;
    let got = crate::emergency::eventually("the weekly report", || async {
        receiver.received().into_iter().find(|r| r.path == "/hook")
    })
    .await;
    assert!(crate::channels::signature_matches(&got.headers, &got.body));
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["event"], "report");
    assert!(
        body["title"]
            .as_str()
            .unwrap()
            .starts_with("Support trends "),
        "{body}"
    );
    assert!(body["summary"]
        .as_str()
        .unwrap()
        .starts_with("# Support trends"));
    assert!(body["report"]["volume"]["by_kind"].is_array(), "{body}");
    assert_eq!(body["report"]["measures"][0]["name"], "mtta");
    let deliveries = server
        .call(
            Method::GET,
            "/api/v1/deliveries?limit=10",
            Some(&server.admin),
            None,
        )
        .await;
    let reports: Vec<&Value> = deliveries
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event"] == "report")
        .collect();
    assert_eq!(reports.len(), 1, "{}", deliveries.body);
    server.stop().await;
}
