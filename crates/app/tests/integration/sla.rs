//! SLA clocks of tickets: business hours across a weekend, time spent pending, the built-in
//! policies, and the API.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use opsdesk_core::sla::SlaSettings;
use opsdesk_core::{Actor, Desk, FixedClock};
use opsdesk_domain::sla::{ClockState, SlaPolicy};
use opsdesk_domain::{CalendarSpec, TicketPatch};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{on_both_backends, Backend, TestDb, TestServer};

on_both_backends!(
    clocks_count_business_hours_and_skip_pending_time,
    the_api_shows_the_clocks_of_the_built_in_policy,
    a_far_off_reading_time_is_refused_at_once,
);

fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
}

async fn set_status(desk: &Desk, id: i64, status: &str) {
    let patch: TicketPatch = serde_json::from_value(json!({ "status": status })).unwrap();
    desk.update_ticket(&Actor::cli(), id, None, patch)
        .await
        .unwrap();
}

async fn clocks_count_business_hours_and_skip_pending_time(backend: Backend) {
    let db = TestDb::new(backend).await;
    let office: CalendarSpec = serde_json::from_value(json!({
        "name": "office", "time_zone": "UTC",
        "hours": { "mon": ["09:00-17:00"], "tue": ["09:00-17:00"], "wed": ["09:00-17:00"],
                   "thu": ["09:00-17:00"], "fri": ["09:00-17:00"] }
    }))
    .unwrap();
    let policy: SlaPolicy = serde_json::from_value(json!({
        "name": "sev2-office", "severity": "SEV2", "first_response_minutes": 60,
        "resolution_minutes": 480, "calendar": "office"
    }))
    .unwrap();
    let settings = SlaSettings::new(vec![office.validate().unwrap()], vec![policy]).unwrap();
    // Friday 27 November 2026, 16:30 UTC: half an hour before closing.
    let clock = Arc::new(FixedClock::new(utc(27, 16, 30)));
    let desk = Desk::new(db.desk().await.db().clone(), clock.clone()).with_sla_settings(settings);
    let cli = Actor::cli();
    let t = desk
        .create_ticket(
            &cli,
            serde_json::from_value(
                json!({ "title": "VPN down", "kind": "incident", "severity": "SEV2" }),
            )
            .unwrap(),
        )
        .await
        .unwrap();

    let sla = desk
        .ticket_sla(&cli, t.id, Some(utc(28, 12, 0)))
        .await
        .unwrap();
    assert_eq!(sla.policy, "sev2-office");
    assert_eq!(sla.calendar, "office");
    // 30 business minutes on Friday, the other 30 on Monday morning.
    assert_eq!(sla.first_response.due_at, Some(utc(30, 9, 30)));
    assert_eq!(sla.first_response.state, ClockState::Running);
    assert_eq!(
        sla.first_response.left_seconds,
        30 * 60,
        "Saturday does not count"
    );
    // 45 of 60 minutes (75 %) are reached Monday 09:15.
    assert_eq!(sla.first_response.warn_at, Some(utc(30, 9, 15)));
    assert_eq!(sla.resolution.due_at, Some(utc(30, 16, 30)));

    // Acknowledged Monday 09:10: met. Pending 10:00–12:00 on Monday moves the resolution due
    // time by two business hours, into Tuesday.
    clock.advance(utc(30, 9, 10) - utc(27, 16, 30));
    set_status(&desk, t.id, "acknowledged").await;
    clock.advance(chrono::Duration::minutes(50));
    set_status(&desk, t.id, "pending").await;
    let paused = desk
        .ticket_sla(&cli, t.id, Some(utc(30, 11, 0)))
        .await
        .unwrap();
    assert_eq!(paused.first_response.state, ClockState::Met);
    assert_eq!(paused.resolution.state, ClockState::Paused);
    clock.advance(chrono::Duration::hours(2));
    set_status(&desk, t.id, "in_progress").await;
    let sla = desk
        .ticket_sla(&cli, t.id, Some(utc(30, 12, 30)))
        .await
        .unwrap();
    assert_eq!(sla.resolution.state, ClockState::Running);
    assert_eq!(
        sla.resolution.due_at,
        Some(Utc.with_ymd_and_hms(2026, 12, 1, 10, 30, 0).unwrap())
    );
    // Past the due time and still open: breached.
    let late = desk
        .ticket_sla(
            &cli,
            t.id,
            Some(Utc.with_ymd_and_hms(2026, 12, 1, 11, 0, 0).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(late.resolution.state, ClockState::Breached);
    desk.db().close().await;
    db.drop_schema().await;
}

async fn the_api_shows_the_clocks_of_the_built_in_policy(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = s
        .ticket(json!({ "title": "Checkout down", "kind": "incident", "severity": "SEV1" }))
        .await;
    let created: DateTime<Utc> = t["created_at"].as_str().unwrap().parse().unwrap();
    let r = s
        .get(&format!(
            "/api/v1/tickets/{}/sla",
            t["key"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["policy"], "default-sev1");
    assert_eq!(r.body["calendar"], "always");
    let due: DateTime<Utc> = r.body["first_response"]["due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(due - created, chrono::Duration::minutes(15));
    let due: DateTime<Utc> = r.body["resolution"]["due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(due - created, chrono::Duration::hours(4));

    let later = (created + chrono::Duration::minutes(20))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let r = s
        .get(&format!("/api/v1/tickets/{}/sla?at={later}", t["id"]))
        .await;
    assert_eq!(r.body["first_response"]["state"], "breached", "{}", r.body);
    s.get(&format!("/api/v1/tickets/{}/sla?at=yesterday", t["id"]))
        .await
        .assert_problem(422, Some("at"));
    s.get("/api/v1/tickets/999/sla")
        .await
        .assert_problem(404, None);
    s.stop().await;
}

/// Reading a clock at the end of time on an office-hours calendar used to walk the calendar
/// day by day for thousands of years on the server's request workers.
async fn a_far_off_reading_time_is_refused_at_once(backend: Backend) {
    let s = TestServer::start_with(backend, |config, _| {
        config.sla.calendars = vec![serde_json::from_value(json!({
            "name": "office", "time_zone": "Europe/Berlin",
            "hours": { "mon": ["09:00-17:00"], "tue": ["09:00-17:00"], "wed": ["09:00-17:00"],
                       "thu": ["09:00-17:00"], "fri": ["09:00-17:00"] }
        }))
        .unwrap()];
        config.sla.policies = vec![serde_json::from_value(json!({
            "name": "sev3-office", "severity": "SEV3", "first_response_minutes": 240,
            "resolution_minutes": 2400, "calendar": "office"
        }))
        .unwrap()];
    })
    .await;
    let t = s
        .ticket(json!({ "title": "Printer jammed", "kind": "incident", "severity": "SEV3" }))
        .await;
    let created: DateTime<Utc> = t["created_at"].as_str().unwrap().parse().unwrap();
    let path = |at: &str| format!("/api/v1/tickets/{}/sla?at={at}", t["id"]);

    let started = std::time::Instant::now();
    for at in [
        "9999-12-31T00:00:00Z",
        "+262142-12-31T00:00:00Z",
        "-262143-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
    ] {
        s.get(&path(&at.replace('+', "%2B")))
            .await
            .assert_problem(422, Some("at"));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "refusing took {:?}",
        started.elapsed()
    );

    // From creation to a year ahead is read.
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for at in [created, created + chrono::Duration::days(360)] {
        let r = s.get(&path(&fmt(at).replace('+', "%2B"))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["calendar"], "office");
    }
    s.get(&path(&fmt(created + chrono::Duration::days(400))))
        .await
        .assert_problem(422, Some("at"));
    s.stop().await;
}
