//! The PagerDuty channel end to end: a channel saved through the API, tickets routed to it,
//! and the server's dispatcher posting Events API v2 events to a local receiver that checks
//! each event against the published Events v2 rules and answers as PagerDuty does (202 with
//! `status: success`, 400 with `status: invalid event`, 429 when busy).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::Json;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{on_both_backends, Backend, TestServer};

on_both_backends!(
    tickets_page_trigger_acknowledge_and_resolve_one_alert,
    a_busy_events_api_is_tried_again,
    a_test_message_is_a_change_event,
    an_alert_is_followed_to_its_resolution_when_the_rule_stops_matching,
);

const ROUTING_KEY: &str = "R0123456789ABCDEF0123456789ABCDE";

/// What Events API v2 requires of an alert event, after PagerDuty's documentation ("Send an
/// Alert Event"): the error messages list every rule broken.
fn check_event(e: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let Some(obj) = e.as_object() else {
        return Err(vec!["event must be a JSON object".into()]);
    };
    let known = [
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "images",
        "links",
        "client",
        "client_url",
    ];
    for k in obj.keys() {
        if !known.contains(&k.as_str()) {
            errors.push(format!("unknown property {k}"));
        }
    }
    match e["routing_key"].as_str() {
        Some(k) if k.len() == 32 => {}
        _ => errors.push("routing_key must be a 32 character string".into()),
    }
    let action = e["event_action"].as_str().unwrap_or_default();
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        errors.push("event_action must be trigger, acknowledge or resolve".into());
    }
    match &e["dedup_key"] {
        Value::String(k) if !k.is_empty() && k.chars().count() <= 255 => {}
        Value::Null if action == "trigger" => {}
        _ => errors.push("dedup_key must be a string of at most 255 characters".into()),
    }
    if action == "trigger" {
        let p = &e["payload"];
        match p["summary"].as_str() {
            Some(s) if !s.is_empty() && s.chars().count() <= 1024 => {}
            _ => errors.push("payload.summary is required, at most 1024 characters".into()),
        }
        if p["source"].as_str().is_none_or(str::is_empty) {
            errors.push("payload.source is required".into());
        }
        if !["critical", "error", "warning", "info"]
            .contains(&p["severity"].as_str().unwrap_or_default())
        {
            errors.push("payload.severity must be critical, error, warning or info".into());
        }
        if let Some(t) = p.get("timestamp") {
            if t.as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_none()
            {
                errors.push("payload.timestamp must be an ISO 8601 time".into());
            }
        }
        for k in ["component", "group", "class"] {
            if p.get(k).is_some_and(|v| !v.is_string()) {
                errors.push(format!("payload.{k} must be a string"));
            }
        }
        if p.get("custom_details").is_some_and(|v| !v.is_object()) {
            errors.push("payload.custom_details must be an object".into());
        }
    } else if e.get("payload").is_some_and(|p| !p.is_object()) {
        errors.push("payload must be an object".into());
    }
    if let Some(links) = e.get("links") {
        let ok = links
            .as_array()
            .is_some_and(|l| l.iter().all(|l| l["href"].is_string()));
        if !ok {
            errors.push("links must be objects with an href".into());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[derive(Clone, Default)]
struct Events {
    /// Every event taken, valid or not, with the status answered.
    seen: Arc<Mutex<Vec<(u16, Value)>>>,
    /// Answer 429 to this many events first.
    busy: Arc<Mutex<u32>>,
}

struct EventsApi {
    url: String,
    events: Events,
}

impl EventsApi {
    async fn start(busy: u32) -> EventsApi {
        let events = Events::default();
        *events.busy.lock().unwrap() = busy;
        let app = axum::Router::new()
            .route(
                "/v2/enqueue",
                post(|State(events): State<Events>, body: axum::body::Bytes| async move {
                    let parsed: Result<Value, _> = serde_json::from_slice(&body);
                    let (status, answer) = {
                        let mut busy = events.busy.lock().unwrap();
                        if *busy > 0 {
                            *busy -= 1;
                            (
                                StatusCode::TOO_MANY_REQUESTS,
                                json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly."}),
                            )
                        } else {
                            match parsed.as_ref().map_err(|e| vec![e.to_string()]).and_then(
                                |e| check_event(e).map(|()| e),
                            ) {
                                Ok(e) => (
                                    StatusCode::ACCEPTED,
                                    json!({"status": "success", "message": "Event processed", "dedup_key": e["dedup_key"]}),
                                ),
                                Err(errors) => (
                                    StatusCode::BAD_REQUEST,
                                    json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}),
                                ),
                            }
                        }
                    };
                    events
                        .seen
                        .lock()
                        .unwrap()
                        .push((status.as_u16(), parsed.unwrap_or(Value::Null)));
                    (status, Json(answer))
                }),
            )
            .route(
                "/v2/change/enqueue",
                post(|State(events): State<Events>, body: axum::body::Bytes| async move {
                    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let ok = parsed["routing_key"].as_str().is_some_and(|k| k.len() == 32)
                        && parsed.get("event_action").is_none()
                        && parsed["payload"]["summary"]
                            .as_str()
                            .is_some_and(|s| !s.is_empty() && s.chars().count() <= 1024);
                    let status = if ok {
                        StatusCode::ACCEPTED
                    } else {
                        StatusCode::BAD_REQUEST
                    };
                    events.seen.lock().unwrap().push((
                        status.as_u16(),
                        json!({"change": parsed}),
                    ));
                    (status, Json(json!({"status": if ok { "success" } else { "invalid event" }})))
                }),
            )
            .with_state(events.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v2/enqueue", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        EventsApi { url, events }
    }

    fn seen(&self) -> Vec<(u16, Value)> {
        self.events.seen.lock().unwrap().clone()
    }
}

#[test]
fn the_receiver_refuses_what_pagerduty_refuses() {
    let good = json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "OPS-1"});
    assert_eq!(check_event(&good), Ok(()));
    for bad in [
        json!({"routing_key": "short", "event_action": "resolve", "dedup_key": "x"}),
        json!({"routing_key": ROUTING_KEY, "event_action": "close", "dedup_key": "x"}),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve"}),
        json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "high"}}),
        json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s", "severity": "info"}}),
        json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "info", "timestamp": "yesterday"}}),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "x", "extra": 1}),
    ] {
        assert!(check_event(&bad).is_err(), "{bad}");
    }
}

/// Waits until `done` holds of the events the receiver took, for at most ten seconds.
async fn events_until(
    api: &EventsApi,
    done: impl Fn(&[(u16, Value)]) -> bool,
) -> Vec<(u16, Value)> {
    let started = Instant::now();
    loop {
        let seen = api.seen();
        if done(&seen) {
            return seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "events did not arrive: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The PagerDuty rule most tests use: SEV1 tickets, the events that move an alert named.
fn sev1_rule() -> Value {
    json!({
        "name": "page-sev1", "severities": ["SEV1"], "channels": ["payments-oncall"],
        "events": ["created", "escalated", "severity_changed", "acknowledged", "resolved"]
    })
}

/// A server with the PagerDuty channel `payments-oncall` (to `api`) and the routing `rule`.
async fn server_with_channel(backend: Backend, api: &EventsApi, rule: Value) -> TestServer {
    let s = TestServer::start_with(backend, |config, _| {
        config.notify.allow_private_addresses = true;
        config.notify.base_url = Some("https://desk.example.com".into());
    })
    .await;
    let admin =
        |path: &'static str, body: Value| s.call(Method::POST, path, Some(&s.admin), Some(body));
    let saved = admin(
        "/api/v1/channels",
        json!({"name": "payments-oncall", "type": "pagerduty", "routing_key": ROUTING_KEY, "url": api.url}),
    )
    .await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.body);
    assert_eq!(saved.body["routing_key"], "<redacted>");
    let rule = admin("/api/v1/routing-rules", rule).await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.body);
    s
}

async fn tickets_page_trigger_acknowledge_and_resolve_one_alert(backend: Backend) {
    let api = EventsApi::start(0).await;
    let s = server_with_channel(backend, &api, sev1_rule()).await;
    let t = s
        .ticket(json!({
            "title": "Checkout down", "kind": "incident", "severity": "SEV1"
        }))
        .await;
    let key = t["key"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tickets/{key}");
    events_until(&api, |e| !e.is_empty()).await;
    let r = s
        .patch(&path, None, json!({"status": "acknowledged"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    events_until(&api, |e| e.len() >= 2).await;
    let r = s.patch(&path, None, json!({"status": "resolved"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let seen = events_until(&api, |e| e.len() >= 3).await;

    let actions: Vec<(u16, &str, &str)> = seen
        .iter()
        .map(|(status, e)| {
            (
                *status,
                e["event_action"].as_str().unwrap_or_default(),
                e["dedup_key"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            (202, "trigger", key.as_str()),
            (202, "acknowledge", key.as_str()),
            (202, "resolve", key.as_str()),
        ]
    );
    let trigger = &seen[0].1;
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(
        trigger["payload"]["summary"],
        format!("[SEV1] {key} Checkout down (created)")
    );
    assert_eq!(
        trigger["links"][0]["href"],
        format!("https://desk.example.com/tickets/{key}")
    );

    // Every delivery is recorded as delivered, and the key shows nowhere.
    let id = t["id"].as_i64().unwrap();
    let started = Instant::now();
    loop {
        let items = s
            .get(&format!("/api/v1/tickets/{id}/deliveries"))
            .await
            .body;
        let delivered = items
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["state"] == "delivered")
            .count();
        if delivered == 3 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{items}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for shown in [
        s.call(Method::GET, "/api/v1/channels", Some(&s.admin), None)
            .await
            .body
            .to_string(),
        s.get(&format!("/api/v1/tickets/{id}/history"))
            .await
            .body
            .to_string(),
        s.get(&format!("/api/v1/tickets/{id}/deliveries"))
            .await
            .body
            .to_string(),
        s.call(Method::GET, "/api/v1/audit", Some(&s.admin), None)
            .await
            .body
            .to_string(),
    ] {
        assert!(!shown.contains(ROUTING_KEY), "{shown}");
    }
    // The key as shown cannot be saved back in its place.
    let back = s
        .call(
            Method::POST,
            "/api/v1/channels",
            Some(&s.admin),
            Some(json!({"name": "payments-oncall", "type": "pagerduty", "routing_key": "<redacted>", "url": api.url})),
        )
        .await;
    back.assert_problem(422, Some("routing_key"));
    s.stop().await;
}

async fn a_busy_events_api_is_tried_again(backend: Backend) {
    let api = EventsApi::start(1).await;
    let s = server_with_channel(backend, &api, sev1_rule()).await;
    let t = s
        .ticket(json!({"title": "Queue backlog", "kind": "incident", "severity": "SEV1"}))
        .await;
    let id = t["id"].as_i64().unwrap();
    events_until(&api, |e| e.iter().any(|(status, _)| *status == 429)).await;
    let items = loop {
        let items = s
            .get(&format!("/api/v1/tickets/{id}/deliveries"))
            .await
            .body;
        if items[0]["attempts"] == 1 && items[0]["last_error"].is_string() {
            break items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(items[0]["state"], "pending", "a 429 is retried: {items}");
    assert!(
        items[0]["last_error"].as_str().unwrap().contains("429"),
        "{items}"
    );
    s.stop().await;
}

async fn a_test_message_is_a_change_event(backend: Backend) {
    let api = EventsApi::start(0).await;
    let s = server_with_channel(backend, &api, sev1_rule()).await;
    let r = s
        .call(
            Method::POST,
            "/api/v1/channels/payments-oncall/test",
            Some(&s.admin),
            None,
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let seen = events_until(&api, |e| !e.is_empty()).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, 202, "{seen:?}");
    let change = &seen[0].1["change"];
    assert_eq!(change["routing_key"], ROUTING_KEY);
    assert!(
        change.get("event_action").is_none(),
        "pages no one: {change}"
    );
    s.stop().await;
}

async fn an_alert_is_followed_to_its_resolution_when_the_rule_stops_matching(backend: Backend) {
    let api = EventsApi::start(0).await;
    // Pages on SEV1 tickets being created, and names neither acknowledged nor resolved.
    let s = server_with_channel(
        backend,
        &api,
        json!({"name": "page", "events": ["created"], "severities": ["SEV1"], "channels": ["payments-oncall"]}),
    )
    .await;
    let quiet = s
        .ticket(json!({"title": "Printer jam", "kind": "incident", "severity": "SEV4"}))
        .await;
    let t = s
        .ticket(json!({"title": "Payments failing", "kind": "incident", "severity": "SEV1"}))
        .await;
    let key = t["key"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tickets/{key}");
    events_until(&api, |e| !e.is_empty()).await;
    // Lowered to SEV3: the rule no longer matches the ticket.
    let r = s.patch(&path, None, json!({"severity": "SEV3"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = s
        .patch(&path, None, json!({"status": "acknowledged"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = s.patch(&path, None, json!({"status": "resolved"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Reopened: a new alert for the same key.
    let r = s.patch(&path, None, json!({"status": "in_progress"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A ticket the channel was never told about is not followed.
    let quiet_path = format!("/api/v1/tickets/{}", quiet["key"].as_str().unwrap());
    let r = s
        .patch(&quiet_path, None, json!({"status": "resolved"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let seen = events_until(&api, |e| e.len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let seen_now = api.seen();
    assert_eq!(seen_now.len(), seen.len(), "nothing more: {seen_now:?}");
    let actions: Vec<(&str, &str)> = seen_now
        .iter()
        .map(|(_, e)| {
            (
                e["event_action"].as_str().unwrap_or_default(),
                e["dedup_key"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("trigger", key.as_str()),
            ("acknowledge", key.as_str()),
            ("resolve", key.as_str()),
            ("trigger", key.as_str()),
        ]
    );
    s.stop().await;
}
